"""Recursive-descent parser: tokens to the syntax tree of :mod:`siyu.segments.lang.nodes`.

Grammar (lowest precedence first; see docs/tags.md)::

    expr      := and_expr ("or" and_expr)*
    and_expr  := unary ("and" unary)*
    unary     := "not" unary | predicate
    predicate := operand [ COMPARE operand
                         | ["not"] "in" "(" literal ("," literal)* ")"
                         | ["not"] "between" operand "and" operand
                         | "is" ["not"] "null" ]
    operand   := literal | path | reference | call | "(" expr ")"
    call      := NAME "(" [arg ("," arg)*] ")"      arg := expr | "last" DURATION
    path      := NAME ("." (NAME | STRING))*
"""

from __future__ import annotations

from decimal import Decimal

from siyu.segments.lang.errors import TagSyntaxError, line_col
from siyu.segments.lang.nodes import (
    Between,
    BoolOp,
    Call,
    Compare,
    CompareOp,
    DurationUnit,
    Expr,
    InList,
    IsNull,
    Literal,
    Not,
    Path,
    Reference,
    Span,
    Window,
)
from siyu.segments.lang.tokens import KEYWORDS, Token, tokenize

_LITERAL_START = ("a string", "a number", "true", "false")


class Parser:
    """One parse of one source text; use :func:`parse`."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.toks = tokenize(source)
        self.i = 0

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def advance(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (text is None or tok.text == text)

    def at_keyword(self, word: str) -> bool:
        return self.at("keyword", word)

    def fail(self, what: str, *expected: str, tok: Token | None = None) -> TagSyntaxError:
        tok = tok or self.tok
        line, col = line_col(self.src, tok.start)
        found = tok.describe()
        if tok.kind == "ident" and tok.text.lower() in KEYWORDS:
            found += f" (keywords are lower case: '{tok.text.lower()}')"
        return TagSyntaxError(
            f"at {line}:{col}: expected {what}, found {found}",
            source=self.src,
            offset=tok.start,
            length=max(1, tok.end - tok.start),
            expected=expected,
        )

    def expect_punct(self, text: str, what: str, *expected: str) -> Token:
        if not self.at("punct", text):
            raise self.fail(what, *(expected or (text,)))
        return self.advance()

    def span_from(self, start: int) -> Span:
        return Span(start, self.toks[self.i - 1].end)

    # -- grammar ---------------------------------------------------------------------------------

    def parse(self) -> Expr:
        expr = self.expr()
        if not self.at("eof"):
            raise self.fail("'and', 'or' or end of input", "and", "or", "end of input")
        return expr

    def expr(self) -> Expr:
        start = self.tok.start
        left = self.and_expr()
        while self.at_keyword("or"):
            self.advance()
            right = self.and_expr()
            left = BoolOp("or", left, right, self.span_from(start))
        return left

    def and_expr(self) -> Expr:
        start = self.tok.start
        left = self.unary()
        while self.at_keyword("and"):
            self.advance()
            right = self.unary()
            left = BoolOp("and", left, right, self.span_from(start))
        return left

    def unary(self) -> Expr:
        if self.at_keyword("not"):
            start = self.advance().start
            operand = self.unary()
            return Not(operand, self.span_from(start))
        return self.predicate()

    def predicate(self) -> Expr:
        start = self.tok.start
        left = self.operand()
        tok = self.tok
        if tok.kind == "op":
            op: CompareOp = tok.text  # type: ignore[assignment]
            self.advance()
            right = self.operand()
            return Compare(op, left, right, self.span_from(start))
        negated = False
        if self.at_keyword("not"):
            self.advance()
            negated = True
            if not (self.at_keyword("in") or self.at_keyword("between")):
                raise self.fail("'in' or 'between' after 'not'", "in", "between")
        if self.at_keyword("in"):
            self.advance()
            items = self.literal_list("not in (" if negated else "in (")
            return InList(left, items, negated, self.span_from(start))
        if self.at_keyword("between"):
            self.advance()
            low = self.operand()
            if not self.at_keyword("and"):
                raise self.fail("'and' in 'between ... and ...'", "and")
            self.advance()
            high = self.operand()
            return Between(left, low, high, negated, self.span_from(start))
        if self.at_keyword("is"):
            self.advance()
            is_not = False
            if self.at_keyword("not"):
                self.advance()
                is_not = True
            if not self.at_keyword("null"):
                if is_not:
                    raise self.fail("'null' after 'is not'", "null")
                raise self.fail("'null' or 'not null' after 'is'", "null", "not")
            self.advance()
            return IsNull(left, is_not, self.span_from(start))
        return left

    def literal_list(self, opener: str) -> tuple[Literal, ...]:
        self.expect_punct("(", f"'(' after '{opener[:-2]}'", "(")
        items: list[Literal] = []
        after = f"'{opener}'"
        while True:
            if self.at("punct", ")") or self.at("eof"):
                raise self.fail(f"a value after {after}", *_LITERAL_START)
            items.append(self.literal_in_list())
            if self.at("punct", ")"):
                self.advance()
                return tuple(items)
            self.expect_punct(",", "',' or ')' in the list", ",", ")")
            after = "',' in the list"

    def literal_in_list(self) -> Literal:
        tok = self.tok
        if tok.kind in ("string", "number") or (tok.kind == "keyword" and tok.text in _BOOLS):
            return self.literal()
        raise self.fail(
            "a literal (a string, a number, true or false) in the list", *_LITERAL_START
        )

    def literal(self) -> Literal:
        tok = self.advance()
        span = Span(tok.start, tok.end)
        if tok.kind == "string":
            assert isinstance(tok.value, str)
            return Literal("string", tok.value, span)
        if tok.kind == "number":
            assert isinstance(tok.value, int | Decimal)
            return Literal("number", tok.value, span)
        return Literal("boolean", tok.text == "true", span)

    def operand(self) -> Expr:
        tok = self.tok
        if tok.kind in ("string", "number") or (tok.kind == "keyword" and tok.text in _BOOLS):
            return self.literal()
        if tok.kind == "reference":
            self.advance()
            assert isinstance(tok.value, tuple)
            kind, name = tok.value
            return Reference(str(kind), name, Span(tok.start, tok.end))
        if tok.kind == "punct" and tok.text == "(":
            self.advance()
            inner = self.expr()
            self.expect_punct(")", "'and', 'or' or ')'", "and", "or", ")")
            return inner
        if tok.kind == "ident":
            if self.toks[self.i + 1].kind == "punct" and self.toks[self.i + 1].text == "(":
                return self.call()
            return self.path()
        if tok.kind == "duration":
            line, col = line_col(self.src, tok.start)
            raise TagSyntaxError(
                f"at {line}:{col}: a duration ({tok.text}) is only allowed after 'last', "
                f"as in count(..., last {tok.text})",
                source=self.src,
                offset=tok.start,
                length=tok.end - tok.start,
                expected=("a value",),
            )
        what = "a value"
        if self.i > 0:
            what += f" after '{self.toks[self.i - 1].text}'"
        if tok.kind == "keyword" and tok.text == "null":
            what += " (test for a missing value with 'is null')"
        raise self.fail(what, "a value")

    def path(self) -> Path:
        first = self.advance()
        parts = [first.text]
        while self.at("punct", "."):
            self.advance()
            tok = self.tok
            if tok.kind in ("ident", "keyword"):
                parts.append(tok.text)
            elif tok.kind == "string":
                assert isinstance(tok.value, str)
                parts.append(tok.value)
            else:
                raise self.fail("a name after '.'", "a name")
            self.advance()
        return Path(tuple(parts), Span(first.start, self.toks[self.i - 1].end))

    def call(self) -> Call:
        name = self.advance()
        self.advance()  # "("
        args: list[Expr] = []
        window: Window | None = None
        if self.at("punct", ")"):
            self.advance()
            return Call(name.text, (), None, self.span_from(name.start))
        while True:
            if self.at_keyword("last"):
                window = self.window()
                self.expect_punct(")", "')' after the window", ")")
                break
            args.append(self.expr())
            if self.at("punct", ")"):
                self.advance()
                break
            self.expect_punct(",", "'and', 'or', ',' or ')'", "and", "or", ",", ")")
        return Call(name.text, tuple(args), window, self.span_from(name.start))

    def window(self) -> Window:
        start = self.advance().start  # "last"
        tok = self.tok
        if tok.kind != "duration":
            raise self.fail("a duration such as 30d, 12w, 6m or 1y after 'last'", "a duration")
        self.advance()
        assert isinstance(tok.value, tuple)
        amount, unit = tok.value
        unit_: DurationUnit = unit  # type: ignore[assignment]
        return Window(int(amount), unit_, Span(start, tok.end))


_BOOLS = ("true", "false")


def parse(source: str) -> Expr:
    """The syntax tree of ``source``; raises :class:`TagSyntaxError` with position."""
    return Parser(source).parse()

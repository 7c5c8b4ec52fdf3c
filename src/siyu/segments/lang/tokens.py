"""The tokenizer: a hand-written scanner from text to a list of tokens.

Hand-written (no regex soup, no ``eval``) so that every error can say exactly where it is and what
was expected. Keywords are lower case; identifiers are ``[A-Za-z_][A-Za-z0-9_]*``; ``kind:name``
with no space is one reference token (``tag:high_value``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from siyu.segments.lang.errors import TagSyntaxError, line_col

TokenKind = Literal[
    "string", "number", "duration", "ident", "keyword", "reference", "op", "punct", "eof"
]
KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "null", "true", "false", "last"})
DURATION_UNITS = {"d": "days", "w": "weeks", "m": "months", "y": "years"}
ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    start: int
    end: int
    value: str | int | Decimal | tuple[int, str] | tuple[str, str] | None = None

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind == "eof":
            return "end of input"
        if self.kind == "string":
            return f"the string {self.text}"
        if self.kind == "number":
            return f"the number {self.text}"
        if self.kind == "duration":
            return f"the duration {self.text}"
        return f"'{self.text}'"


def is_ident_start(ch: str) -> bool:
    return ch.isascii() and (ch.isalpha() or ch == "_")


def is_ident_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def is_ref_char(ch: str) -> bool:
    return is_ident_char(ch) or ch == "-"


class Scanner:
    """Turns source text into tokens; see :func:`tokenize`."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0

    def fail(self, message: str, offset: int, length: int = 1, *expected: str) -> TagSyntaxError:
        line, col = line_col(self.src, offset)
        return TagSyntaxError(
            f"at {line}:{col}: {message}",
            source=self.src,
            offset=offset,
            length=length,
            expected=expected,
        )

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        src = self.src
        while True:
            while self.pos < len(src) and src[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(src):
                end = len(src.rstrip())  # point just after the last text, not past newlines
                out.append(Token("eof", "", end, end))
                return out
            out.append(self.next_token())

    def next_token(self) -> Token:
        src, start = self.src, self.pos
        ch = src[start]
        two = src[start : start + 2]
        if two in ("==", "!=", "<=", ">="):
            self.pos += 2
            return Token("op", two, start, self.pos)
        if ch in "<>":
            self.pos += 1
            return Token("op", ch, start, self.pos)
        if ch in "(),.":
            self.pos += 1
            return Token("punct", ch, start, self.pos)
        if ch == "=":
            raise self.fail("unexpected '='; use '==' to compare", start, 1, "==")
        if ch == "!":
            raise self.fail("unexpected '!'; use '!=' or 'not'", start, 1, "!=", "not")
        if ch in "\"'":
            return self.string()
        if ch.isdigit() or (ch == "-" and start + 1 < len(src) and src[start + 1].isdigit()):
            return self.number()
        if is_ident_start(ch):
            return self.word()
        raise self.fail(f"unexpected character {ch!r}", start)

    def string(self) -> Token:
        src, start = self.src, self.pos
        quote = src[start]
        i = start + 1
        chars: list[str] = []
        while True:
            if i >= len(src) or src[i] == "\n":
                raise self.fail(
                    f"unterminated string; expected a closing {quote}", start, i - start, quote
                )
            ch = src[i]
            if ch == quote:
                break
            if ch == "\\":
                esc = src[i + 1 : i + 2]
                if esc in ESCAPES:
                    chars.append(ESCAPES[esc])
                    i += 2
                    continue
                if esc == "u" and _is_hex(src[i + 2 : i + 6]):
                    chars.append(chr(int(src[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                raise self.fail(
                    f"unknown escape '\\{esc}' in a string; use \\\\, \\\", \\', \\n, \\t, "
                    "\\r, \\0 or \\uXXXX",
                    i,
                    2,
                )
            chars.append(ch)
            i += 1
        self.pos = i + 1
        return Token("string", src[start : self.pos], start, self.pos, "".join(chars))

    def number(self) -> Token:
        src, start = self.src, self.pos
        i = start + 1 if src[start] == "-" else start
        while i < len(src) and src[i].isdigit():
            i += 1
        decimal = False
        if i < len(src) and src[i] == "." and not src[i + 1 : i + 2].isalpha():
            if not src[i + 1 : i + 2].isdigit():
                raise self.fail("expected a digit after '.' in a number", i + 1, 1, "a digit")
            decimal = True
            i += 1
            while i < len(src) and src[i].isdigit():
                i += 1
        j = i
        while j < len(src) and is_ident_char(src[j]):
            j += 1
        text = src[start:i]
        if j > i:
            suffix = src[i:j]
            if suffix in DURATION_UNITS and not decimal and not text.startswith("-"):
                self.pos = j
                return Token("duration", src[start:j], start, j, (int(text), suffix))
            if suffix in DURATION_UNITS:
                raise self.fail(
                    f"a duration needs a positive whole number, found '{src[start:j]}'",
                    start,
                    j - start,
                )
            raise self.fail(
                f"unknown duration unit '{suffix}' in '{src[start:j]}'; "
                "use d (days), w (weeks), m (months) or y (years)",
                i,
                j - i,
                *DURATION_UNITS,
            )
        self.pos = i
        value: int | Decimal = Decimal(text) if decimal else int(text)
        return Token("number", text, start, i, value)

    def word(self) -> Token:
        src, start = self.src, self.pos
        i = start
        while i < len(src) and is_ident_char(src[i]):
            i += 1
        word = src[start:i]
        if i < len(src) and src[i] == ":":
            j = i + 1
            while j < len(src) and is_ref_char(src[j]):
                j += 1
            if j == i + 1:
                raise self.fail(
                    f"expected a name after '{word}:', as in {word}:high_value", i + 1, 1, "a name"
                )
            self.pos = j
            return Token("reference", src[start:j], start, j, (word, src[i + 1 : j]))
        self.pos = i
        return Token("keyword" if word in KEYWORDS else "ident", word, start, i, word)


def _is_hex(text: str) -> bool:
    return len(text) == 4 and all(c in "0123456789abcdefABCDEF" for c in text)


def tokenize(source: str) -> list[Token]:
    """All tokens of ``source``, ending with one ``eof`` token; raises TagSyntaxError."""
    return Scanner(source).tokens()

"""Pretty-printing any syntax tree and parsing the text back gives the same tree."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.segments.lang import TagError, TagSyntaxError, TagTypeError, parse, to_text, validate
from siyu.segments.lang.nodes import (
    COMPARE_OPS,
    Between,
    BoolOp,
    Call,
    Compare,
    Expr,
    InList,
    IsNull,
    Literal,
    Not,
    Path,
    Reference,
    Window,
)
from siyu.segments.lang.tokens import KEYWORDS

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda x: x not in KEYWORDS
)
literals = st.one_of(
    st.builds(Literal, st.just("string"), st.text(max_size=8)),
    st.builds(Literal, st.just("number"), st.integers(-(10**12), 10**12)),
    st.builds(
        Literal,
        st.just("number"),
        st.decimals(
            allow_nan=False, allow_infinity=False, places=3, max_value=10**9, min_value=-(10**9)
        ),
    ),
    st.builds(Literal, st.just("boolean"), st.booleans()),
)
paths = st.builds(
    lambda head, rest: Path((head, *rest)),
    names,
    st.lists(st.one_of(names, st.sampled_from(sorted(KEYWORDS)), st.text(max_size=5)), max_size=2),
)
references = st.builds(
    Reference,
    st.sampled_from(["tag", "tier", "segment", "reachable"]),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,10}", fullmatch=True),
)
windows = st.builds(Window, st.integers(1, 400), st.sampled_from(["d", "w", "m", "y"]))


def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    operands = st.one_of(literals, paths, references, children)
    return st.one_of(
        st.builds(Compare, st.sampled_from(COMPARE_OPS), operands, operands),
        st.builds(
            InList, operands, st.lists(literals, min_size=1, max_size=3).map(tuple), st.booleans()
        ),
        st.builds(Between, operands, operands, operands, st.booleans()),
        st.builds(IsNull, operands, st.booleans()),
        st.builds(Not, children),
        st.builds(BoolOp, st.sampled_from(["and", "or"]), children, children),
        st.builds(
            Call,
            st.sampled_from(["count", "sum", "days_since", "custom_fn"]),
            st.lists(children, max_size=2).map(tuple),
            st.none() | windows,
        ),
    )


trees = st.recursive(st.one_of(literals, paths, references), extend, max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(trees)
def test_print_then_parse_is_identity(tree: Expr) -> None:
    text = to_text(tree)
    assert parse(text) == tree, text
    assert to_text(parse(text)) == text


def test_decimal_and_negative_numbers_survive() -> None:
    tree = Compare("<", Path(("x",)), Literal("number", Decimal("-1E+3")))
    assert to_text(tree) == "x < -1000.0"
    assert parse(to_text(tree)) == tree


TOKENS = ["and ", "or ", "not ", "in ", "between ", "is ", "null", "true", "last ", "count("]
alphabet = st.sampled_from([*"abcz_.,()'\"\\:=!<> 0123456789-dwmy\n", *TOKENS, "tag:"])


def _error_of(call: Callable[[], object]) -> TagError | None:
    try:
        call()
    except TagError as err:
        return err
    return None


@settings(max_examples=500, deadline=None)
@given(st.lists(alphabet, max_size=25).map("".join))
def test_any_text_parses_or_raises_a_syntax_error(text: str) -> None:
    err = _error_of(lambda: parse(text))
    if err is None:
        tree = parse(text)
        assert parse(to_text(tree)) == tree
    else:
        assert isinstance(err, TagSyntaxError)
        assert err.message.startswith(f"at {err.line}:{err.column}:")
        assert 0 <= err.offset <= len(text)


@settings(max_examples=300, deadline=None)
@given(trees)
def test_checking_any_tree_raises_only_tag_type_errors(tree: Expr) -> None:
    err = _error_of(lambda: validate(to_text(tree)))
    if err is not None:
        assert isinstance(err, TagTypeError)
        assert err.message.endswith(f" at {err.line}:{err.column}")

"""Pretty-printer: the canonical text of a syntax tree.

``parse(to_text(tree)) == tree`` for every tree the parser can produce (tested with hypothesis),
so stored definitions can be normalised and shown back to users without losing meaning.
Parentheses are added only where precedence needs them.
"""

from __future__ import annotations

from decimal import Decimal

from siyu.segments.lang.nodes import (
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
)
from siyu.segments.lang.tokens import KEYWORDS, is_ident_char, is_ident_start

_OR, _AND, _NOT, _PREDICATE, _OPERAND = 1, 2, 3, 4, 5
_QUOTE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def quote(text: str) -> str:
    """A double-quoted string literal for ``text``, escaped so the tokenizer reads it back."""
    out = []
    for ch in text:
        if ch in _QUOTE:
            out.append(_QUOTE[ch])
        elif ord(ch) < 32 or ch in "\u2028\u2029\x85" or (ch.isspace() and ch != " "):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def is_identifier(text: str) -> bool:
    return (
        bool(text)
        and is_ident_start(text[0])
        and all(is_ident_char(c) for c in text)
        and text not in KEYWORDS
    )


def literal_text(node: Literal) -> str:
    if node.kind == "string":
        return quote(str(node.value))
    if node.kind == "boolean":
        return "true" if node.value else "false"
    if isinstance(node.value, Decimal):
        text = format(node.value, "f")
        return text if "." in text else text + ".0"
    return str(node.value)


def path_text(node: Path) -> str:
    rest = [p if is_identifier(p) or p in KEYWORDS else quote(p) for p in node.parts[1:]]
    return ".".join([node.parts[0], *rest])


def _precedence(node: Expr) -> int:
    if isinstance(node, BoolOp):
        return _OR if node.op == "or" else _AND
    if isinstance(node, Not):
        return _NOT
    if isinstance(node, Compare | InList | Between | IsNull):
        return _PREDICATE
    return _OPERAND


def to_text(node: Expr, level: int = _OR) -> str:
    """Canonical source text of ``node`` (parenthesised if it binds looser than ``level``)."""
    text = _text(node)
    return f"({text})" if _precedence(node) < level else text


def _text(node: Expr) -> str:
    if isinstance(node, Literal):
        return literal_text(node)
    if isinstance(node, Path):
        return path_text(node)
    if isinstance(node, Reference):
        return node.text
    if isinstance(node, Call):
        args = [to_text(a) for a in node.args]
        if node.window is not None:
            args.append(node.window.text)
        return f"{node.name}({', '.join(args)})"
    if isinstance(node, Compare):
        return f"{to_text(node.left, _OPERAND)} {node.op} {to_text(node.right, _OPERAND)}"
    if isinstance(node, InList):
        items = ", ".join(literal_text(i) for i in node.items)
        keyword = "not in" if node.negated else "in"
        return f"{to_text(node.operand, _OPERAND)} {keyword} ({items})"
    if isinstance(node, Between):
        keyword = "not between" if node.negated else "between"
        low, high = to_text(node.low, _OPERAND), to_text(node.high, _OPERAND)
        return f"{to_text(node.operand, _OPERAND)} {keyword} {low} and {high}"
    if isinstance(node, IsNull):
        return f"{to_text(node.operand, _OPERAND)} is {'not null' if node.negated else 'null'}"
    if isinstance(node, Not):
        return f"not {to_text(node.operand, _NOT)}"
    if node.op == "or":
        return f"{to_text(node.left, _OR)} or {to_text(node.right, _AND)}"
    return f"{to_text(node.left, _AND)} and {to_text(node.right, _NOT)}"

"""Errors of the tag language, each pointing at a place in the source.

Both kinds are :class:`~siyu.errors.InvalidInput` (HTTP 400), so the API and CLI show them like
any other bad input; they also carry line, column and offset so that an editor can underline the
exact spot, and a caret snippet so that a terminal can show it.
"""

from __future__ import annotations

from typing import Any

from siyu.errors import InvalidInput


def line_col(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``source``."""
    before = source[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return line, column


def caret_snippet(source: str, offset: int, length: int = 1) -> str:
    """The source line holding ``offset`` and a caret line under the offending text."""
    start = source.rfind("\n", 0, offset) + 1
    end = source.find("\n", offset)
    end = len(source) if end == -1 else end
    text = source[start:end]
    column = offset - start
    width = max(1, min(length, len(text) - column))
    return f"{text}\n{' ' * column}{'^' * width}"


class TagError(InvalidInput):
    """A tag expression that cannot be used; says where and what was expected."""

    default_hint = "Correct the tag expression at the marked position (see docs/tags.md)."

    def __init__(
        self,
        message: str,
        *,
        source: str,
        offset: int,
        length: int = 1,
        expected: tuple[str, ...] = (),
        details: dict[str, Any] | None = None,
    ) -> None:
        self.source = source
        self.offset = offset
        self.line, self.column = line_col(source, offset)
        self.expected = expected
        self.snippet = caret_snippet(source, offset, length)
        info: dict[str, Any] = {
            "line": self.line,
            "column": self.column,
            "offset": offset,
            "snippet": self.snippet,
        }
        if expected:
            info["expected"] = list(expected)
        info.update(details or {})
        super().__init__(message, field="expression", details=info)

    def render(self) -> str:
        """Message and caret snippet, for a terminal."""
        return f"{self.message}\n{self.snippet}"


class TagSyntaxError(TagError):
    """The text is not a tag expression: message ``at L:C: expected X, found Y``."""


class TagTypeError(TagError):
    """The expression parses but mixes types or uses a name where it is not allowed."""

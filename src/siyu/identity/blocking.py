"""Blocked values and batch normalisation.

Forms, SDKs and exports fill empty fields with placeholders ('null', '0', 'test@example.com').
Such a value is syntactically valid, so normalising does not catch it, yet merging on it would
join every customer who has it. Blocked values are skipped with the pattern that matched, so the
skip can be explained.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from siyu.errors import InvalidInput
from siyu.identity.kind import IdentifierKind, InvalidIdentifier, compile_pattern, get_kind
from siyu.registry import Registry

UNIVERSAL_BLOCKED_PATTERNS: tuple[str, ...] = (
    r"^0+$",
    r"^null$",
    r"^none$",
    r"^nil$",
    r"^undefined$",
    r"^nan$",
    r"^n/?a$",
    r"^unknown$",
    r"^anonymous$",
    r"^guest$",
    r"^test$",
    r"^-+$",
)
"""Placeholders that forms, SDKs and exports write when they have no value; checked for every
kind (case-insensitively). Merging on one would join every customer who has it."""


def default_blocked_patterns(
    kind: IdentifierKind | str, registry: Registry | None = None
) -> tuple[str, ...]:
    """The patterns :func:`is_blocked` uses when given none: universal ones plus the kind's own.

    To add a workspace's own, pass ``(*default_blocked_patterns(kind), r"@ourbrand\\.com$")``.
    """
    return UNIVERSAL_BLOCKED_PATTERNS + get_kind(kind, registry).blocked_patterns


def is_blocked(
    kind: IdentifierKind | str,
    normalised_value: str,
    patterns: Sequence[str] | None = None,
    *,
    registry: Registry | None = None,
) -> str | None:
    """The first pattern that ``normalised_value`` matches (so the skip can be explained), or None.

    For ``namespace_by_source`` kinds the part after 'source:' is checked too, so that
    'shopify:0' is caught by ``^0+$``.
    """
    resolved = get_kind(kind, registry)
    candidates = [normalised_value]
    if resolved.namespace_by_source and ":" in normalised_value:
        candidates.append(normalised_value.split(":", 1)[1])
    checked = default_blocked_patterns(resolved) if patterns is None else tuple(patterns)
    screen, rest = _screen(checked)
    if screen is not None and not any(screen.search(c) for c in candidates):
        checked = rest  # none of the others matches: only these can
    for pattern in checked:
        compiled = compile_pattern(pattern)
        if any(compiled.search(candidate) for candidate in candidates):
            return pattern
    return None


_BACKREF = re.compile(r"\\[1-9]|\(\?P=")


@functools.lru_cache(maxsize=256)
def _screen(patterns: tuple[str, ...]) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    """One alternation of the patterns without back-references, and those with them.

    Almost no value is blocked, so one search usually settles it instead of one per pattern (a
    quarter of batch normalisation); the first matching pattern is still looked up in order.
    """
    simple = [p for p in patterns if not _BACKREF.search(p)]
    rest = tuple(p for p in patterns if _BACKREF.search(p))
    if not simple:
        return None, patterns
    for p in simple:
        compile_pattern(p)  # a bad pattern is reported by itself
    try:
        return re.compile("|".join(f"(?:{p})" for p in simple), re.IGNORECASE), rest
    except re.error:  # e.g. inline global flags: check one by one
        return None, patterns


# --- batches ------------------------------------------------------------------------------------


def blocked_many(kind: IdentifierKind | str, normalised: Sequence[str]) -> list[str | None]:
    """:func:`is_blocked` with the default patterns over a column of normalised values."""
    found = blocked_column(kind, pa.array(list(normalised), pa.string()))
    return [found.get(i) for i in range(len(normalised))]


def blocked_column(kind: IdentifierKind | str, normalised: pa.Array) -> dict[int, str]:
    """The blocked values of an Arrow column of normalised values (nulls are not values):
    index -> the pattern :func:`is_blocked` names, with the default patterns.

    One search of the patterns' alternation settles almost every value, a column at a time in
    Arrow's RE2 where the alternation is RE2-compatible (values with a line break, where
    Python's ``$`` differs, are left to Python); the few it matches (and patterns with
    back-references) are then checked one by one, in order, as ``is_blocked`` does. No Python
    string is made for the others (an incremental run screens tens of thousands a batch).
    """
    resolved = get_kind(kind)
    patterns = default_blocked_patterns(resolved)
    screen, rest = _screen(patterns)
    namespaced = resolved.namespace_by_source
    maybe = set(_screen_column(screen, normalised, namespaced))
    if rest:  # back-references: Python only (RE2 has none), one search a value
        values = normalised.to_pylist()
        for compiled in (compile_pattern(p) for p in rest):
            search = compiled.search
            for i, value in enumerate(values):
                if value is not None and (
                    search(value)
                    or (namespaced and ":" in value and search(value.split(":", 1)[1]))
                ):
                    maybe.add(i)
    out: dict[int, str] = {}
    ordered = sorted(maybe)
    picked = normalised.take(pa.array(ordered, pa.int64())).to_pylist()
    for i, value in zip(ordered, picked, strict=True):
        if value is None:
            continue
        found = is_blocked(resolved, value, patterns)
        if found is not None:
            out[i] = found
    return out


def _screen_column(screen: re.Pattern[str] | None, column: pa.Array, namespaced: bool) -> list[int]:
    """Indexes of the values Python must look at: those the screen matches in RE2, plus any
    value where RE2 and Python's ``re`` could disagree (non-ASCII: case folding and ``\\d``;
    a line break: ``$``). All of them when the screen is not RE2 syntax."""
    if screen is None or not len(column):
        return list(range(len(column)))
    try:
        found = pc.match_substring_regex(column, screen.pattern, ignore_case=True)
        if namespaced:  # also the part after 'source:'
            after = pc.replace_substring_regex(column, "^[^:]*:", "", max_replacements=1)
            found = pc.or_(found, pc.match_substring_regex(after, screen.pattern, ignore_case=True))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return list(range(len(column)))
    found = pc.or_(found, pc.invert(pc.string_is_ascii(column)))
    found = pc.or_(found, pc.match_substring(column, "\n"))
    mask = np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)
    return [int(i) for i in np.flatnonzero(mask)]


def normalise_many(
    kind: IdentifierKind | str,
    values: Sequence[str],
    *,
    region: str | Sequence[str | None] | None = None,
    source: str | None = None,
    blocked: Sequence[str] | None = None,
    check_blocked: bool = True,
    registry: Registry | None = None,
) -> tuple[list[str | None], list[str | None]]:
    """Normalise a column of values; never raises for a bad value.

    Returns two lists aligned with ``values``: the normalised value (None when invalid or blocked)
    and the reason it was refused (None when accepted). ``region`` is one market for all values
    or one per value. Blocked values are refused with the matching pattern unless
    ``check_blocked`` is False; ``blocked`` replaces the default patterns.
    """
    resolved = get_kind(kind, registry)
    regions: Sequence[str | None]
    if region is None or isinstance(region, str):
        regions = [region] * len(values)
    else:
        regions = region
        if len(regions) != len(values):
            raise InvalidInput(
                f"normalise_many got {len(values)} values but {len(regions)} regions.",
                hint="Pass one region for all values, or exactly one per value.",
                field="region",
            )
    out: list[str | None] = []
    reasons: list[str | None] = []
    seen: dict[tuple[str, str | None], tuple[str | None, str | None]] = {}
    for value, value_region in zip(values, regions, strict=True):
        key = (value, value_region)
        if key not in seen:
            seen[key] = _one(resolved, value, value_region, source, blocked, check_blocked)
        normalised, reason = seen[key]
        out.append(normalised)
        reasons.append(reason)
    return out, reasons


def _one(
    kind: IdentifierKind,
    value: str,
    region: str | None,
    source: str | None,
    blocked: Sequence[str] | None,
    check_blocked: bool,
) -> tuple[str | None, str | None]:
    try:
        normalised = kind.normalise(value, region=region, source=source)
    except InvalidIdentifier as exc:
        return None, exc.message
    pattern = is_blocked(kind, normalised, blocked) if check_blocked else None
    if pattern is not None:
        return None, f"{kind.name} {normalised!r} is blocked by pattern {pattern!r}"
    return normalised, None

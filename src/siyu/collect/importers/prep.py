"""Vectorised preparation of an export batch: canonical columns, dates, money, flags.

Everything here is an Arrow compute kernel over whole columns; Python only loops over the
handful of configured columns and date formats, never over rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

# Date formats seen in store exports, tried in order (first match wins per value).
DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S %z",  # Shopify: 2025-03-01 10:00:00 -0500
    "%Y-%m-%dT%H:%M:%S%z",  # Amazon, ISO 8601 with offset or Z
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",  # WooCommerce (site time)
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %I:%M:%S %p",  # TikTok Shop: 03/01/2025 10:00:00 PM
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%Y-%m-%d",
    "%m/%d/%Y",
)


def column(
    batch: pa.RecordBatch | pa.Table, names: Sequence[str], default: str = ""
) -> pa.Array | pa.ChunkedArray:
    """The first of ``names`` present in the batch (stripped), else a column of ``default``."""
    for name in names:
        if name in batch.schema.names:
            return pc.utf8_trim_whitespace(batch.column(name))
    return pa.array([default] * batch.num_rows, pa.string())


def timestamps(
    values: pa.Array | pa.ChunkedArray, formats: Sequence[str] = DATE_FORMATS, tz: str = "UTC"
) -> pa.Array | pa.ChunkedArray:
    """ISO-8601 UTC strings ('...Z'); values in no known format are kept as they were, so the
    pipeline quarantines them naming the field; empty values become null.

    Values without an offset are read in ``tz`` (the shop's time zone).
    """
    out = pa.nulls(len(values), pa.timestamp("s", tz="UTC"))
    empty = pc.equal(values, "")
    todo = values
    for fmt in formats:
        parsed = pc.strptime(todo, format=fmt, unit="s", error_is_null=True)
        if parsed.type.tz is None:
            parsed = pc.assume_timezone(parsed, tz, ambiguous="earliest", nonexistent="earliest")
        out = pc.coalesce(out, parsed.cast(pa.timestamp("s", tz="UTC")))
        # Values parsed (or empty) are left out of the next formats: most files use one.
        left = pc.and_(pc.is_null(out), pc.invert(empty))
        if not pc.any(left).as_py():
            break
        todo = pc.if_else(left, values, pa.scalar(None, pa.string()))
    # The cast of a naive timestamp to text is several times faster than strftime.
    text = pc.cast(out.cast(pa.timestamp("s")), pa.string())
    iso = pc.binary_join_element_wise(
        pc.utf8_replace_slice(text, start=10, stop=11, replacement="T"), "Z", ""
    )
    return pc.if_else(empty, pa.scalar(None, pa.string()), pc.coalesce(iso, values))


_PLAIN = r"^\d+(\.\d+)?$"


def money(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Amounts as plain decimal text: currency symbols, spaces and thousands separators removed,
    a decimal comma read as the point; empty -> null. Values without digits stay as written
    for the pipeline to reject, naming the field."""
    if pc.all(pc.or_(pc.equal(values, ""), pc.match_substring_regex(values, _PLAIN))).as_py():
        # Plain amounts throughout (most exports): only empty values change.
        return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    # A decimal comma ("1.030,50", "12,5"): drop the dots, then read the comma as the point.
    european = pc.match_substring_regex(values, pattern=r"^[^,]*\d,\d{1,2}\s*[^\d,.]*$")
    swapped = pc.replace_substring(pc.replace_substring(values, ".", ""), ",", ".")
    values = pc.if_else(european, swapped, values)
    cleaned = pc.replace_substring_regex(values, pattern=r"[^0-9.\-]", replacement="")
    cleaned = pc.if_else(pc.equal(cleaned, ""), pa.scalar(None, pa.string()), cleaned)
    has_digit = pc.match_substring_regex(values, pattern=r"[0-9]")
    return pc.if_else(
        pc.equal(values, ""), pa.scalar(None, pa.string()), pc.if_else(has_digit, cleaned, values)
    )


def flag(values: pa.Array | pa.ChunkedArray, true: Sequence[str]) -> pa.Array | pa.ChunkedArray:
    """True where the (lower-cased) value is one of ``true``; null where empty."""
    lowered = pc.utf8_lower(values)
    result = pc.is_in(lowered, value_set=pa.array([t.lower() for t in true], pa.string()))
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.bool_()), result)


def canonical(
    batch: pa.RecordBatch | pa.Table,
    mapping: Mapping[str, Sequence[str]],
    *,
    dates: Sequence[str],
    amounts: Sequence[str],
    formats: Sequence[str] = DATE_FORMATS,
    tz: str = "UTC",
) -> pa.Table:
    """A table of the canonical fields named in ``mapping`` (field -> candidate columns)."""
    cols: dict[str, pa.Array | pa.ChunkedArray] = {}
    for field, names in mapping.items():
        values = column(batch, names)
        if field in dates:
            values = timestamps(values, formats, tz)
        elif field in amounts:
            values = money(values)
        elif field in ("user_id", "order_id"):
            values = pc.utf8_ltrim(values, characters="'")  # Shopify's Excel guard: '7001
        cols[field] = values
    return pa.table(cols)

"""The ``generic`` importer: any order or customer file, described by a mapping TOML.

```toml
kind = "orders"            # or "customers"
vendor = "mystore"         # prefix of message ids and anonymous ids
delimiter = ","            # "\t" for tab-separated
timezone = "Asia/Jakarta"  # for dates without an offset (default UTC)
totals = "first_row"       # or "sum" with [total_parts]
date_formats = ["%d/%m/%Y %H:%M"]  # tried before the built-in formats

[columns]                  # canonical field = column name (or a list of candidates)
order_id = "Order No"
created_at = "Date"
total = "Grand Total"
line_sku = "SKU"

[statuses]                 # optional: status values per category
cancelled = ["void"]
```
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from siyu.collect.importers.customers import CUSTOMER_FIELDS, CustomerSpec
from siyu.collect.importers.orders import (
    DEFAULT_STATUSES,
    LINE_FIELDS,
    ORDER_FIELDS,
    OrderSpec,
)
from siyu.collect.importers.prep import DATE_FORMATS
from siyu.errors import InvalidInput


def _names(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def from_mapping(path: Path) -> OrderSpec | CustomerSpec:
    """Build an importer from a mapping file; errors name the offending key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"Cannot read mapping {path}: {exc}", field="mapping") from exc
    kind = data.get("kind", "orders")
    columns = {str(k): _names(v) for k, v in dict(data.get("columns", {})).items()}
    allowed = set(ORDER_FIELDS + LINE_FIELDS) if kind == "orders" else set(CUSTOMER_FIELDS)
    unknown = sorted(set(columns) - allowed)
    if kind not in ("orders", "customers") or unknown:
        raise InvalidInput(
            f"Mapping {path}: unknown kind {kind!r}" if unknown == [] else
            f"Mapping {path}: unknown canonical fields {', '.join(unknown)}",
            hint=f"kind is 'orders' or 'customers'; fields: {', '.join(sorted(allowed))}.",
            field="mapping",
        )  # fmt: skip
    vendor = str(data.get("vendor", "generic"))
    delimiter = str(data.get("delimiter", ","))
    if kind == "customers":
        return CustomerSpec("generic", vendor, f"mapping {path.name}", delimiter, columns)
    if "order_id" not in columns:
        raise InvalidInput(f"Mapping {path} needs columns.order_id.", field="mapping")
    statuses = {**DEFAULT_STATUSES, **{k: tuple(v) for k, v in data.get("statuses", {}).items()}}
    return OrderSpec(
        name="generic",
        vendor=vendor,
        description=f"mapping {path.name}",
        delimiter=delimiter,
        columns=columns,
        totals="sum" if data.get("totals") == "sum" else "first_row",
        total_parts={str(k): int(v) for k, v in data.get("total_parts", {}).items()},
        statuses=statuses,
        date_formats=(*data.get("date_formats", ()), *DATE_FORMATS),
        timezone=str(data.get("timezone", "UTC")),
        line_price_is_total=bool(data.get("line_price_is_total", False)),
    )

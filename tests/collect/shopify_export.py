"""Writes Shopify orders exports with the documented columns (Admin > Orders > Export).

Used by the importer tests (kill test) and benchmarks/import.py: ``n`` orders of 1-3 lines;
only the first row of an order carries totals, status and customer, as in real exports.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

HEADER = [
    "Name",
    "Email",
    "Financial Status",
    "Paid at",
    "Fulfillment Status",
    "Fulfilled at",
    "Accepts Marketing",
    "Currency",
    "Subtotal",
    "Shipping",
    "Taxes",
    "Total",
    "Discount Code",
    "Discount Amount",
    "Shipping Method",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem compare at price",
    "Lineitem sku",
    "Lineitem requires shipping",
    "Lineitem taxable",
    "Lineitem fulfillment status",
    "Billing Name",
    "Billing Street",
    "Billing Address1",
    "Billing Address2",
    "Billing Company",
    "Billing City",
    "Billing Zip",
    "Billing Province",
    "Billing Country",
    "Billing Phone",
    "Shipping Name",
    "Shipping Street",
    "Shipping Address1",
    "Shipping Address2",
    "Shipping Company",
    "Shipping City",
    "Shipping Zip",
    "Shipping Province",
    "Shipping Country",
    "Shipping Phone",
    "Notes",
    "Note Attributes",
    "Cancelled at",
    "Payment Method",
    "Payment Reference",
    "Refunded Amount",
    "Vendor",
    "Id",
    "Tags",
    "Risk Level",
    "Source",
    "Lineitem discount",
]

CURRENCIES = ("USD", "EUR", "GBP", "IDR", "SGD")


def order_rows(i: int) -> list[dict[str, str]]:
    """The rows of order number ``i`` (deterministic; no random state)."""
    lines = 1 + i % 3
    price = 10 + (i * 7) % 90
    subtotal = sum(price + k for k in range(lines))
    currency = CURRENCIES[i % len(CURRENCIES)]
    day = 1 + i % 28
    rows = []
    for k in range(lines):
        row = dict.fromkeys(HEADER, "")
        row.update(
            {
                "Name": f"#{1000 + i}",
                "Lineitem quantity": "1",
                "Lineitem name": f"Product {i % 50 + k}",
                "Lineitem price": f"{price + k:.2f}",
                "Lineitem sku": f"SKU-{i % 50 + k}",
                "Id": str(5_000_000_000 + i),
            }
        )
        if k == 0:
            row.update(
                {
                    "Email": f"buyer{i % 997}@example.com",
                    "Financial Status": "refunded" if i % 17 == 0 else "paid",
                    "Accepts Marketing": "yes" if i % 2 else "no",
                    "Currency": currency,
                    "Subtotal": f"{subtotal:.2f}",
                    "Shipping": "5.00",
                    "Taxes": "0.00",
                    "Total": f"{subtotal + 5:.2f}",
                    "Created at": f"2025-03-{day:02d} 10:{i % 60:02d}:00 -0500",
                    "Billing Country": "US",
                    "Refunded Amount": f"{subtotal + 5:.2f}" if i % 17 == 0 else "0.00",
                }
            )
        rows.append(row)
    return rows


def write_shopify_orders(path: Path, n: int, *, bom: bool = True) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        for i in range(n):
            writer.writerows(order_rows(i))
    return path


def repeat_export(
    source: Path, target: Path, copies: int, *, delimiter: str, vary: tuple[str, ...],
    keep_first: int = 0,
) -> Path:  # fmt: skip
    """``source``'s data rows ``copies`` times, the ``vary`` columns suffixed with the copy
    number (new orders, customers), its quirks included; the first ``keep_first`` data rows
    (e.g. TikTok's column descriptions) are written once. For benchmarks of every importer.

    Tab-separated files are unquoted (as Amazon writes them): split on tabs, not parsed as CSV.
    """
    raw = source.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    if delimiter == "\t":
        rows = [line.split("\t") for line in text.splitlines()]
    else:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    header, kept, data = rows[0], rows[1 : 1 + keep_first], rows[1 + keep_first :]
    data = [r for r in data if any(r)]
    at = [header.index(c) for c in vary]
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    write = (lambda r: out.write("\t".join(r) + "\n")) if delimiter == "\t" else writer.writerow
    for row in (header, *kept):
        write(row)
    for k in range(copies):
        for row in data:
            copy = list(row)
            for i in at:
                if copy[i]:
                    copy[i] = f"{k}x{copy[i]}" if "@" in copy[i] else f"{copy[i]}-{k}"
            write(copy)
    target.write_text(out.getvalue(), encoding="utf-8-sig" if bom else "utf-8", newline="")
    return target

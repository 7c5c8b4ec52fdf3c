"""Customer exports -> identify calls with traits, and Consent Updated from the marketing
columns (Shopify's "Accepts Email Marketing" / "Accepts SMS Marketing", or the older
"Accepts Marketing"). One row is one customer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from siyu.collect.importers.orders import YES, _digest
from siyu.collect.importers.prep import canonical, flag
from siyu.collect.validate import Record

CUSTOMER_FIELDS = (
    "user_id", "email", "phone", "first_name", "last_name", "country", "city", "tags",
    "accepts_email", "accepts_sms", "total_spent", "orders_count", "created_at",
)  # fmt: skip


@dataclass(frozen=True)
class CustomerSpec:
    name: str
    vendor: str
    description: str
    delimiter: str
    columns: Mapping[str, Sequence[str]]
    group_field: str | None = None

    @property
    def source_columns(self) -> frozenset[str]:
        """The export columns this spec reads (the reader converts only these)."""
        return frozenset(n for names in self.columns.values() for n in names)

    def prepare(self, batch: pa.RecordBatch | pa.Table) -> pa.Table:
        table = canonical(
            batch,
            {f: self.columns.get(f, ()) for f in CUSTOMER_FIELDS},
            dates=("created_at",),
            amounts=("total_spent",),
        )
        return table.set_column(
            table.schema.get_field_index("accepts_email"),
            "accepts_email",
            flag(table["accepts_email"], YES),
        ).set_column(
            table.schema.get_field_index("accepts_sms"),
            "accepts_sms",
            flag(table["accepts_sms"], YES),
        )

    def build(self, table: pa.Table, origin_row: int) -> Iterator[Record]:
        for i, r in enumerate(table.to_pylist()):
            row = origin_row + i
            email = (r["email"] or "").lower() or None
            if r["user_id"]:
                ids = {"userId": r["user_id"]}
            elif email:
                ids = {"anonymousId": f"{self.vendor}-email:{email}"}
            else:
                ids = {}  # the pipeline quarantines it: a customer needs an id or an e-mail
            traits = {
                "email": email,
                "phone": r["phone"] or None,
                "first_name": r["first_name"] or None,
                "last_name": r["last_name"] or None,
                "country": r["country"] or None,
                "city": r["city"] or None,
                "tags": r["tags"] or None,
                "total_spent": r["total_spent"],
                "orders_count": r["orders_count"] or None,
            }
            traits = {k: v for k, v in traits.items() if v is not None}
            base = f"import:{self.vendor}:customer:{r['user_id'] or email}"
            yield Record(
                row,
                {
                    "type": "identify",
                    "messageId": f"{base}:{_digest(ids, traits)}",
                    "timestamp": r["created_at"],
                    "traits": traits,
                    **ids,
                },
            )
            for channel in ("email", "sms"):
                accepted = r[f"accepts_{channel}"]
                if accepted is None or not ids:
                    continue
                status = "granted" if accepted else "denied"
                yield Record(
                    row,
                    {
                        "type": "track",
                        "event": "Consent Updated",
                        "messageId": f"{base}:consent:{channel}:{status}",
                        "timestamp": r["created_at"],
                        "properties": {
                            "purpose": "marketing",
                            "channel": channel,
                            "status": status,
                            "evidence": f"{self.name} export: accepts {channel} marketing",
                        },
                        **ids,
                    },
                )

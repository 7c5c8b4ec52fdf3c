"""The incremental run's row diff: which stored rows a run replaces and which rows it adds."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from siyu.identity.diff import differing, unmatched

T0 = datetime(2025, 1, 1, 10, 0)


def test_rows_differ_on_any_column_and_nulls_equal_nulls() -> None:
    stored = pa.table(
        {
            "kind": ["email", "email", "phone", "email"],
            "value": ["a@x.co", "b@x.co", "+6281311110001", "c@x.co"],
            "customer_id": ["cus_1", None, "cus_2", "cus_3"],
            "seen": pa.array([T0, T0, T0, T0], pa.timestamp("us")),
        }
    )
    new = pa.table(
        {
            "kind": ["email", "email", "phone", "email"],
            "value": ["c@x.co", "b@x.co", "+6281311110001", "a@x.co"],
            "customer_id": ["cus_3", None, "cus_9", "cus_1"],
            # The same instants in another unit and zone: equal.
            "seen": pa.array(
                [T0.replace(tzinfo=UTC)] * 3 + [datetime(2025, 1, 2)], pa.timestamp("ms", "UTC")
            ),
        }
    )
    columns = ["kind", "value", "customer_id", "seen"]
    gone = unmatched(stored, new, columns)
    added = unmatched(new, stored, columns)
    assert gone.column("value").to_pylist() == ["a@x.co", "+6281311110001"]  # in their order
    assert added.column("value").to_pylist() == ["+6281311110001", "a@x.co"]
    assert added.schema == new.schema  # the rows as given (times as given), not as compared
    assert unmatched(stored, new.slice(0, 0), columns) == stored
    assert unmatched(stored.slice(0, 0), new, columns).num_rows == 0


def test_no_value_can_pass_for_another_row() -> None:
    """What a joined-text fingerprint confused: a separator inside a value moving a column
    boundary, and a NUL-byte value standing for a null."""
    stored = pa.table({"kind": ["a\x1eb", "email"], "value": ["c", "\x00"]})
    new = pa.table({"kind": ["a", "email"], "value": ["b\x1ec", None]})
    assert unmatched(stored, new, ["kind", "value"]) == stored
    assert unmatched(new, stored, ["kind", "value"]) == new


@pytest.mark.parametrize("seed", range(8))
def test_pairing_rows_by_key_finds_what_two_anti_joins_find(seed: int) -> None:
    """The one-query diff (rows paired by key) equals the two anti-joins, with repeated keys,
    null keys, null values and times in other units."""
    rng = np.random.default_rng(seed)

    def rows(n: int, unit: str) -> pa.Table:
        kind = rng.choice(["email", "phone", None], n, p=[0.45, 0.45, 0.1])
        value = [f"v{i}" for i in rng.integers(0, 12, n)]
        customer = rng.choice(["cus_1", "cus_2", None], n)
        seen = [T0.replace(minute=int(m)) for m in rng.integers(0, 3, n)]
        return pa.table(
            {
                "kind": pa.array(kind.tolist(), pa.string()),
                "value": pa.array(value, pa.string()),
                "customer_id": pa.array(customer.tolist(), pa.string()),
                "seen": pa.array(seen, pa.timestamp(unit)),
            }
        )

    old, new = rows(int(rng.integers(0, 40)), "us"), rows(int(rng.integers(0, 40)), "ms")
    columns = ["kind", "value", "customer_id", "seen"]
    gone, added = differing(old, new, ["kind", "value"], columns)
    assert gone == unmatched(old, new, columns)
    assert added == unmatched(new, old, columns)

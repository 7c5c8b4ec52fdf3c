"""A slice stored in parts (one transaction, each part stored as it is built) stores exactly
what whole slices store, resumes from its checkpoint after an interruption, and goes back
through the key checks when a later part meets a stored message."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import pytest
import sqlalchemy as sa

from siyu.collect.importers import run_import
from siyu.collect.tables import import_checkpoints
from siyu.registry import registry
from siyu.runtime import Runtime
from tests.collect.shopify_export import HEADER, order_rows
from tests.collect.test_import_columnar import FIXTURES, snapshot, wipe


def _export(path: Path, orders: Iterable[int]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        for i in orders:
            writer.writerows(order_rows(i))
    return path


def _summary(s: object) -> tuple[int, ...]:
    names = ("rows", "messages", "stored", "duplicates", "repeated_details", "quarantined")
    return tuple(getattr(s, k) for k in names)


@pytest.mark.parametrize(
    ("importer", "name", "batch_rows", "part_rows"),
    [("shopify-orders", None, 40, 7), ("woocommerce-orders", "woocommerce_orders.csv", 3, 1)],
    ids=["generated-shopify", "woocommerce-with-checkouts"],
)
def test_parts_of_a_slice_store_what_whole_slices_store(
    rt: Runtime, tmp_path: Path, importer: str, name: str | None, batch_rows: int,
    part_rows: int,
) -> None:  # fmt: skip
    path = FIXTURES / name if name else _export(tmp_path / "orders.csv", range(60))
    spec = registry.importers.get(importer)
    results = []
    for part in (batch_rows, part_rows):
        checkpoints: list[int] = []
        summary = run_import(rt.pipeline(), spec, path, batch_rows=batch_rows, part_rows=part,
                             on_checkpoint=checkpoints.append)  # fmt: skip
        results.append((snapshot(rt), _summary(summary), checkpoints))
        wipe(rt)
    whole, parts = results
    assert parts[0] == whole[0]
    assert parts[1] == whole[1]
    # A checkpoint per slice, at the same rows, not one per part.
    assert parts[2] == whole[2]
    assert len(whole[2]) >= 2


def test_an_interrupted_slice_of_parts_resumes_from_its_checkpoint(
    rt: Runtime, tmp_path: Path
) -> None:
    # Orders 997-1036 are second orders of the customers of 0-39: repeated details, which
    # the resumed run's totals (kept by the checkpoint) must count as the whole run did.
    path = _export(tmp_path / "orders.csv", [*range(40), *range(997, 1037)])
    spec = registry.importers.get("shopify-orders")
    whole = run_import(rt.pipeline(), spec, path, batch_rows=40, part_rows=10)
    assert (whole.duplicates, whole.repeated_details) == (0, 40)
    uninterrupted = snapshot(rt)
    wipe(rt)
    calls: list[int] = []

    def crash(rows: int) -> None:
        calls.append(rows)
        if len(calls) == 14:  # in the fourth slice, after some of its parts were stored
            raise KeyboardInterrupt

    checkpoints: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        run_import(rt.pipeline(), spec, path, batch_rows=40, part_rows=10, progress=crash,
                   on_checkpoint=checkpoints.append)  # fmt: skip
    assert len(checkpoints) == 3  # the first three slices: the fourth was rolled back
    with rt.db.engine.connect() as conn:
        saved = conn.execute(sa.select(import_checkpoints.c.repeated_details)).scalar_one()
    assert 0 < saved < 40  # repeats of the stored slices, counted when resuming
    resumed = run_import(rt.pipeline(), spec, path, batch_rows=40, part_rows=10)
    assert resumed.resumed_at == checkpoints[-1]
    assert snapshot(rt) == uninterrupted
    totals = ("stored", "duplicates", "repeated_details", "quarantined")
    assert [getattr(resumed, k) for k in totals] == [getattr(whole, k) for k in totals]


def test_a_stored_message_in_a_later_part_sends_the_whole_slice_through_the_checks(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siyu.collect import columnar

    conflicts: list[bool] = []
    original = columnar._key_conflict

    def spy(exc: BaseException) -> bool:
        conflicts.append(original(exc))
        return conflicts[-1]

    monkeypatch.setattr(columnar, "_key_conflict", spy)
    spec = registry.importers.get("shopify-orders")
    known = _export(tmp_path / "known.csv", range(20))
    # New orders first, then the 20 stored ones: the conflict comes in a later part, after
    # parts stored without the checks in the same transaction.
    later = _export(tmp_path / "later.csv", [*range(20, 40), *range(20)])
    results = []
    for part_rows in (1_000, 10):
        run_import(rt.pipeline(), spec, known, batch_rows=1_000)
        conflicts.clear()
        summary = run_import(rt.pipeline(), spec, later, batch_rows=1_000, part_rows=part_rows)
        results.append((snapshot(rt), _summary(summary)))
        wipe(rt)
        # DuckDB: the parts stored without the checks were rolled back when one conflicted.
        assert conflicts == ([True] if rt.db.engine.dialect.name == "duckdb" else [])
    assert results[1] == results[0]
    stored, duplicates = results[0][1][2], results[0][1][3]
    assert stored > 0
    assert duplicates > 0

"""Bulk writes: which keys were new, answered by the insert itself, on both engines."""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa

from siyu.runtime import Runtime
from siyu.store import schema
from siyu.store.bulk import insert_new, insert_new_keys


def _sources(ws: str, names: list[str]) -> pa.Table:
    n = len(names)
    return pa.table(
        {
            "workspace_id": pa.array([ws] * n, pa.string()),
            "source_id": pa.array([f"src_{x}" for x in names], pa.string()),
            "name": pa.array(names, pa.string()),
            "kind": pa.array(["api"] * n, pa.string()),
            "created_at": pa.array([0] * n, pa.timestamp("us")),
        }
    )


def test_insert_new_keys_returns_only_the_inserted_keys_as_arrow(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        first = insert_new_keys(conn, schema.sources, _sources(ws, ["a", "b"]), ("source_id",))
        again = insert_new_keys(conn, schema.sources, _sources(ws, ["b", "c"]), ("source_id",))
        empty = insert_new_keys(conn, schema.sources, _sources(ws, []), ("source_id",))
        legacy = insert_new(conn, schema.sources, _sources(ws, ["c", "d"]), ("source_id",))
    assert sorted(first["source_id"].to_pylist()) == ["src_a", "src_b"]
    assert again["source_id"].to_pylist() == ["src_c"]
    assert empty.num_rows == 0
    assert empty.column_names == ["source_id"]
    assert legacy == [("src_d",)]
    with rt.db.engine.connect() as conn:
        stored = conn.execute(
            sa.select(schema.sources.c.source_id).where(schema.sources.c.name.in_(list("abcd")))
        ).scalars()
        assert sorted(stored) == ["src_a", "src_b", "src_c", "src_d"]


def test_a_stored_key_amid_a_batch_leaves_no_partial_rows(rt: Runtime) -> None:
    """PostgreSQL copies a batch straight into the table under a savepoint; a stored key in
    the middle fails that copy after some rows went in, and the staged insert that follows
    must store each new key once and leave the stored row as it was (DuckDB: one statement)."""
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        insert_new_keys(conn, schema.sources, _sources(ws, ["m"]), ("source_id",))
        batch = _sources(ws, ["a", "b", "m", "x", "y"])
        batch = batch.set_column(2, "name", pa.array(["a", "b", "changed", "x", "y"]))
        inserted = insert_new_keys(conn, schema.sources, batch, ("source_id",))
        after = insert_new_keys(conn, schema.sources, _sources(ws, ["z"]), ("source_id",))
    assert sorted(inserted["source_id"].to_pylist()) == ["src_a", "src_b", "src_x", "src_y"]
    assert after["source_id"].to_pylist() == ["src_z"]  # the transaction is still usable
    s = schema.sources.c
    with rt.db.engine.connect() as conn:
        stored = conn.execute(
            sa.select(s.source_id, s.name).where(s.source_id.like("src_%")).order_by(s.source_id)
        ).all()
    assert [tuple(r) for r in stored] == [
        ("src_a", "a"),
        ("src_b", "b"),
        ("src_m", "m"),
        ("src_x", "x"),
        ("src_y", "y"),
        ("src_z", "z"),
    ]

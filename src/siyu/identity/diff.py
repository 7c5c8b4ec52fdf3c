"""Write only what changed: an incremental run's graph rows against the rows they replace.

An incremental run used to delete every stored row of the components it touched and append
them again, through every primary-key index, although a batch of new events changes few of
them (a new link, a later last-seen time, a merged customer). Here the stored rows are read
once (with DuckDB's ``rowid``), both sides are compared row by row on one text fingerprint of
the compared columns (nulls and times included), and only rows that differ are deleted (by
``rowid`` on DuckDB, where deleting by key is a scan of the table; by primary key on PostgreSQL,
which uses its index) and appended. The stored result is the same set of rows as deleting and
re-appending everything; rows that did not change keep their ``created_at`` (and a conflict its
review ``status``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.store.bulk import append, append_new, stage, unstage

ROWID = "__rid"
"""The DuckDB ``rowid`` of a stored row, read with it (absent on PostgreSQL)."""

NOT_COMPARED = frozenset({"created_at", "status", ROWID})
"""Columns a run stamps (``created_at``) or an operator sets (a conflict's ``status``)."""


def _text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as text for the fingerprint: times as integers, nulls as a NUL byte."""
    if pa.types.is_timestamp(column.type):
        column = pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64())
    if not pa.types.is_string(column.type):
        column = pc.cast(column, pa.string())
    out: pa.Array = pc.fill_null(column, "\x00")
    return out


def fingerprint(table: pa.Table, columns: list[str]) -> pa.Array:
    """One text per row joining the compared columns (``\\x1e`` between them)."""
    if table.num_rows == 0:
        return pa.array([], pa.string())
    parts = [_text(table.column(c)) for c in columns]
    joined = pc.binary_join_element_wise(*parts, "\x1e")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


@dataclass
class Changes:
    """What a diff wrote: the stored rows deleted and the new rows appended."""

    deleted: pa.Table
    appended: pa.Table


def write_changes(
    conn: sa.Connection,
    table: sa.Table,
    workspace_id: str,
    old: pa.Table,
    new: pa.Table,
    *,
    only_new_keys: bool = False,
) -> Changes:
    """Make the stored ``old`` rows of ``table`` into ``new``: delete the old rows no new row
    equals, append the new rows no old row equals (``only_new_keys``: skipping keys stored
    elsewhere, as :func:`append_new` does)."""
    columns = [c.name for c in table.columns if c.name not in NOT_COMPARED]
    fo, fn = fingerprint(old, columns), fingerprint(new, columns)
    gone = old.filter(pc.invert(pc.is_in(fo, value_set=fn))) if old.num_rows else old
    added = new.filter(pc.invert(pc.is_in(fn, value_set=fo))) if new.num_rows else new
    if gone.num_rows:
        _delete(conn, table, workspace_id, gone)
    if added.num_rows:
        (append_new if only_new_keys else append)(conn, table, added)
    return Changes(gone, added)


def _delete(conn: sa.Connection, table: sa.Table, workspace_id: str, rows: pa.Table) -> None:
    if ROWID in rows.column_names:
        ids = np.unique(np.asarray(rows.column(ROWID).to_numpy(), dtype=np.int64))
        name = stage(conn, table, pa.table({ROWID: pa.array(ids)}))
        try:
            conn.exec_driver_sql(
                f"DELETE FROM {table.name} WHERE rowid IN (SELECT {ROWID} FROM {name})"
            )
        finally:
            unstage(conn, name)
        return
    key = [c.name for c in table.primary_key.columns if c.name != "workspace_id"]
    name = stage(conn, table, rows.select(key))
    try:
        match = " AND ".join(f"s.{k} = {table.name}.{k}" for k in key)
        conn.execute(
            sa.text(
                f"DELETE FROM {table.name} WHERE workspace_id = :ws AND EXISTS "
                f"(SELECT 1 FROM {name} s WHERE {match})"
            ),
            {"ws": workspace_id},
        )
    finally:
        unstage(conn, name)

"""Merge propagation to every slice's per-customer rows (``registry.merge_followers``).

A resolution run collects its moves (old customer id -> surviving id), stages them as one
relation with columns ``old_customer_id, new_customer_id`` and calls every registered follower
with its name in the run's transaction: ``fn(conn, workspace_id, moves)``. Followers re-key their
rows; where the survivor already holds a row with the same key, the old row is dropped.

Splits must give back exactly the earlier rows, which a follower cannot do from the moves alone.
So before calling the followers, :func:`snapshot` archives, for every table of the schema with a
``customer_id`` column (other than the ones One-ID re-points itself), the old customers' rows and
whether the survivor held the same key (``identity_row_archive``). When a split revives a
customer, :func:`restore` removes the copies the merge moved to the survivor and puts the
archived rows back. This is exact for followers that re-key or drop (the contract above); a
follower that combines rows (sums balances) recomputes them itself.

:class:`TableFollower` is the plain re-key follower of one table, registered here for
``customer_scores`` (named ``table:customer_scores``) while its owner registers none.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow as pa
import sqlalchemy as sa

from siyu.identity.tables import identity_row_archive
from siyu.registry import Registry, registry
from siyu.store.bulk import upsert

_names = itertools.count()

SELF_MANAGED = frozenset({"events", "orders", "consents", "customers", "order_lines"})
"""Re-pointed by One-ID itself through the raw sender (identity_anchors), never archived."""


@contextmanager
def staged_moves(conn: sa.Connection, pairs: Sequence[tuple[str, str]]) -> Iterator[str]:
    """A temporary relation (old_customer_id, new_customer_id) readable in this transaction."""
    name = f"__siyu_moves_{next(_names)}"
    if conn.dialect.name == "duckdb":
        data = pa.table(
            {
                "old_customer_id": pa.array([p[0] for p in pairs], pa.string()),
                "new_customer_id": pa.array([p[1] for p in pairs], pa.string()),
            }
        )
        raw = conn.connection.driver_connection
        raw.register(name, data)  # type: ignore[union-attr]
        try:
            yield name
        finally:
            raw.unregister(name)  # type: ignore[union-attr]
        return
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE {name} (old_customer_id VARCHAR(40), new_customer_id VARCHAR(40)) "
        "ON COMMIT DROP"
    )
    if pairs:
        conn.execute(
            sa.text(f"INSERT INTO {name} VALUES (:o, :n)"), [{"o": o, "n": n} for o, n in pairs]
        )
    try:
        yield name
    finally:
        conn.exec_driver_sql(f"DROP TABLE {name}")


def follow_merges(
    conn: sa.Connection, workspace_id: str, pairs: Sequence[tuple[str, str]]
) -> dict[str, int]:
    """Archive the old customers' rows, then call every merge follower; rows changed each."""
    pairs = [(o, n) for o, n in pairs if o != n]
    if not pairs:
        return {}
    out: dict[str, int] = {}
    with staged_moves(conn, pairs) as moves:
        snapshot(conn, workspace_id, moves)
        for name, follower in registry.merge_followers.items():
            out[name] = int(follower(conn, workspace_id, moves) or 0)
    return out


def follow_splits(
    conn: sa.Connection, workspace_id: str, pairs: Sequence[tuple[str, str]]
) -> dict[str, int]:
    """Put back the archived rows of the customers a split revived; rows restored per table."""
    if not pairs:
        return {}
    with staged_moves(conn, pairs) as revived:
        return restore(conn, workspace_id, revived)


def followed_tables() -> list[sa.Table]:
    """Every table with a ``customer_id`` column that merges re-key through followers."""
    from siyu.store.catalog import load_all_tables

    return [
        t
        for t in load_all_tables().sorted_tables
        if "customer_id" in t.c and t.name not in SELF_MANAGED and not t.name.startswith("identit")
    ]


def _key(table: sa.Table) -> tuple[bool, list[str]]:
    pk = [c.name for c in table.primary_key.columns]
    return "customer_id" in pk, [c for c in pk if c not in ("workspace_id", "customer_id")]


def _same(key: list[str], left: str, right: str) -> str:
    return "".join(f" AND {left}.{c} = {right}.{c}" for c in key)


def snapshot(conn: sa.Connection, workspace_id: str, moves: str) -> int:
    """Archive every followed table's rows of the old customers; return the rows archived."""
    total = 0
    for table in followed_tables():
        in_key, key = _key(table)
        name = table.name
        collided = (
            f"(EXISTS (SELECT 1 FROM {name} s WHERE s.workspace_id = :ws "
            f"AND s.customer_id = m.new_customer_id{_same(key, 's', 't')}) "
            f"OR EXISTS (SELECT 1 FROM {name} s JOIN {moves} m2 "
            "ON s.customer_id = m2.old_customer_id WHERE s.workspace_id = :ws "
            "AND m2.new_customer_id = m.new_customer_id AND s.customer_id < t.customer_id"
            f"{_same(key, 's', 't')}))"
            if in_key
            else "FALSE"
        )
        found = conn.execute(
            sa.text(
                f"SELECT t.*, m.new_customer_id AS __into, {collided} AS __collided "
                f"FROM {name} t JOIN {moves} m ON t.customer_id = m.old_customer_id "
                "WHERE t.workspace_id = :ws"
            ),
            {"ws": workspace_id},
        ).all()
        if found:
            _archive(conn, workspace_id, table, key, [dict(r._mapping) for r in found])
            total += len(found)
    return total


def _archive(
    conn: sa.Connection, workspace_id: str, table: sa.Table, key: list[str], rows: list[Any]
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    records = [{str(c.name): r[c.name] for c in table.columns} for r in rows]
    n = len(rows)
    data = pa.table(
        {
            "workspace_id": pa.array([workspace_id] * n, pa.string()),
            "table_name": pa.array([table.name] * n, pa.string()),
            "customer_id": pa.array([r["customer_id"] for r in rows], pa.string()),
            "row_key": pa.array(
                ["\x1f".join(str(r[c]) for c in key)[:600] for r in rows], pa.string()
            ),
            "merged_into": pa.array([r["__into"] for r in rows], pa.string()),
            "collided": pa.array([bool(r["__collided"]) for r in rows], pa.bool_()),
            "record": pa.array(
                [orjson.dumps(r, default=str).decode() for r in records], pa.string()
            ),
            "archived_at": pa.array([now] * n, pa.timestamp("us")),
        }
    )
    upsert(
        conn,
        identity_row_archive,
        data,
        ["workspace_id", "table_name", "customer_id", "row_key"],
        {c: f"excluded.{c}" for c in ("merged_into", "collided", "record", "archived_at")},
    )


def restore(conn: sa.Connection, workspace_id: str, revived: str) -> dict[str, int]:
    """Archived rows of revived customers go back; the copies moved to the survivor go away.

    ``revived`` names (old_customer_id = the customer it had been merged into,
    new_customer_id = the revived customer). Splits are rare and small: row by row is fine.
    """
    arc = identity_row_archive
    found = conn.execute(
        sa.text(
            "SELECT a.table_name, a.customer_id, a.collided, a.record, "
            "m.old_customer_id AS survivor FROM identity_row_archive a "
            f"JOIN {revived} m ON a.customer_id = m.new_customer_id WHERE a.workspace_id = :ws"
        ),
        {"ws": workspace_id},
    ).all()
    tables = {t.name: t for t in followed_tables()}
    out: dict[str, int] = {}
    for r in found:
        table = tables.get(str(r.table_name))
        if table is None:
            continue
        in_key, key = _key(table)
        record = _typed(table, _doc(r.record))
        pk = [table.c[c] == record[c] for c in key] + [table.c.workspace_id == workspace_id]
        if in_key:
            mine = conn.execute(
                sa.select(sa.func.count()).where(*pk, table.c.customer_id == record["customer_id"])
            ).scalar()
            if mine:
                continue  # never moved (no follower for this table)
            if not r.collided:
                conn.execute(table.delete().where(*pk, table.c.customer_id == r.survivor))
        else:
            conn.execute(table.delete().where(*pk))
        conn.execute(table.insert().values(**record))
        out[table.name] = out.get(table.name, 0) + 1
    if found:
        conn.execute(
            arc.delete().where(
                arc.c.workspace_id == workspace_id,
                arc.c.customer_id.in_(sorted({str(r.customer_id) for r in found})),
            )
        )
    return {f"restored:{k}": v for k, v in sorted(out.items())}


def _typed(table: sa.Table, record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k in table.c}
    for col in table.columns:
        value = out.get(col.name)
        if isinstance(value, str) and isinstance(col.type, sa.DateTime):
            out[col.name] = datetime.fromisoformat(value)
        elif isinstance(value, str) and isinstance(col.type, sa.Date):
            out[col.name] = date.fromisoformat(value[:10])
    return out


def _doc(value: Any) -> dict[str, Any]:
    loaded = orjson.loads(value) if isinstance(value, str | bytes) else value
    return loaded if isinstance(loaded, dict) else {}


class TableFollower:
    """Re-keys one table's rows to the survivor; a row whose key the survivor (or a smaller
    merged id) already holds is dropped. The table needs ``customer_id`` and a primary key."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.in_key, self.key = _key(table)

    def __repr__(self) -> str:
        return f"TableFollower({self.table.name})"

    def __call__(self, conn: sa.Connection, workspace_id: str, moves: str) -> int:
        name, ws = self.table.name, {"ws": workspace_id}
        if self.in_key:
            conn.execute(
                sa.text(
                    f"DELETE FROM {name} WHERE workspace_id = :ws AND EXISTS (SELECT 1 FROM "
                    f"{moves} m WHERE m.old_customer_id = {name}.customer_id AND ("
                    f"EXISTS (SELECT 1 FROM {name} s WHERE s.workspace_id = :ws "
                    f"AND s.customer_id = m.new_customer_id{_same(self.key, 's', name)}) "
                    f"OR EXISTS (SELECT 1 FROM {moves} m2 JOIN {name} y "
                    "ON y.customer_id = m2.old_customer_id WHERE y.workspace_id = :ws "
                    "AND m2.new_customer_id = m.new_customer_id "
                    f"AND m2.old_customer_id < m.old_customer_id{_same(self.key, 'y', name)})))"
                ),
                ws,
            )
        result = conn.execute(
            sa.text(
                f"UPDATE {name} SET customer_id = (SELECT m.new_customer_id FROM {moves} m "
                f"WHERE m.old_customer_id = {name}.customer_id) WHERE workspace_id = :ws "
                f"AND customer_id IN (SELECT old_customer_id FROM {moves})"
            ),
            ws,
        )
        return max(int(result.rowcount or 0), 0)


FOLLOWED_HERE = ("customer_scores",)
"""Tables followed here until their owners register followers of their own."""


def register(reg: Registry) -> None:
    from siyu.store.catalog import load_all_tables

    tables = load_all_tables().tables
    for name in FOLLOWED_HERE:
        if name in tables:
            reg.merge_followers.register(f"table:{name}", TableFollower(tables[name]))

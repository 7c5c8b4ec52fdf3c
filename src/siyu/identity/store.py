"""Writing a resolution: the graph tables, then every record follows its customer.

Events, orders and consents are re-pointed by one set-based ``UPDATE ... FROM identity_anchors``
per table (joined on the raw userId+source or anonymousId the pipeline keyed them by), so that a
later split can re-point them back the same way. Customer rows of merged customers are folded into
the survivor (earliest first seen, latest last seen, most recent non-empty traits) and archived,
so a split can restore them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.compute.arrow_sql import arrow_query
from siyu.identity import tables as t
from siyu.identity.extract import Graph, query_arrow
from siyu.identity.keys import keys_of
from siyu.identity.resolve import Resolution
from siyu.store import schema
from siyu.store.bulk import append, append_new, arrow_type, stage, unstage, upsert

TS = pa.timestamp("us")


def short_hash(*parts: str, prefix: str) -> str:
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=10).hexdigest()
    return prefix + digest


def customer_ids(workspace_id: str, graph: Graph, res: Resolution) -> tuple[pa.Array, pa.Array]:
    """Surviving customer id per node and per anchor: the group's oldest provisional id.

    Set-based: anchors sorted by (group, first seen, provisional id) in Arrow, the first of each
    group wins; a group no sender reaches gets an id derived from its first identifier. Both
    results are one ``take`` of the provisional ids (plus the few derived ones) by index
    instead of string selections (``if_else``, ``replace_with_mask``): 0.67 s instead of
    0.79-0.90 s at 1M.
    """
    anchors = graph.anchors
    node = anchors.node
    group = np.where(node >= 0, res.group[np.maximum(node, 0)], -1) if len(node) else node
    picked = np.flatnonzero(group >= 0)
    frame = pa.table(
        {
            "group": pa.array(group[picked]),
            "seen": pa.array(anchors.first_seen[picked]),
            "id": anchors.provisional_id.take(pa.array(picked)),
        }
    )
    order = np.asarray(
        pc.sort_indices(
            frame, sort_keys=[("group", "ascending"), ("seen", "ascending"), ("id", "ascending")]
        ).to_numpy(),
        dtype=np.int64,
    )
    g = group[picked][order]
    first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else g
    n_groups = int(res.group.max()) + 1 if len(res.group) else 0
    winner = np.full(n_groups, -1, dtype=np.int64)  # per group, the winning anchor
    winner[g[first]] = picked[order[first]]
    per_node = winner[res.group] if len(res.group) else np.zeros(0, dtype=np.int64)
    ids = anchors.provisional_id
    missing = np.flatnonzero(per_node < 0)
    if missing.size:  # only those are made in Python (not a string per node)
        made = [
            short_hash(workspace_id, key, prefix="cus_")
            for key in graph.key_array.take(pa.array(missing)).to_pylist()
        ]
        per_node[missing] = len(ids) + np.arange(missing.size)
        ids = pa.concat_arrays([ids, pa.array(made, pa.string())])
    nodes = ids.take(pa.array(per_node))
    own = np.arange(len(node), dtype=np.int64)
    if len(per_node):
        own = np.where(node >= 0, per_node[np.maximum(node, 0)], own)
    return nodes.cast(pa.string()), ids.take(pa.array(own)).cast(pa.string())


@dataclass
class GraphRows:
    """The rows a resolution stores, one Arrow table per graph table."""

    identities: pa.Table
    links: pa.Table
    anchors: pa.Table
    conflicts: pa.Table


def write_graph(
    conn: sa.Connection,
    workspace_id: str,
    graph: Graph,
    res: Resolution,
    node_customers: pa.Array,
    anchor_customers: pa.Array,
    now: datetime,
) -> None:
    """Store nodes, links, anchors and conflicts (the caller deleted the rows they replace)."""
    rows = graph_rows(workspace_id, graph, res, node_customers, anchor_customers, now)
    append(conn, t.identities, rows.identities)
    append(conn, t.identity_links, rows.links)
    append(conn, t.identity_anchors, rows.anchors)
    append_new(conn, t.identity_conflicts, rows.conflicts)


def graph_rows(
    workspace_id: str,
    graph: Graph,
    res: Resolution,
    node_customers: pa.Array,
    anchor_customers: pa.Array,
    now: datetime,
) -> GraphRows:
    """The graph tables' rows of a resolution, as Arrow."""
    n = len(graph.keys)
    kind_col, value_col = graph.key_parts
    comps, first_index = np.unique(res.component, return_index=True)
    comp_name = np.empty(int(res.component.max()) + 1 if n else 0, dtype=object)
    blake2b, head = hashlib.blake2b, f"{workspace_id}|"
    comp_name[comps] = [  # short_hash(workspace_id, key, prefix="cmp_"), without a call each
        "cmp_" + blake2b(f"{head}{key}".encode(), digest_size=10).hexdigest()
        for key in graph.key_array.take(pa.array(first_index)).to_pylist()
    ]
    ws = pa.repeat(pa.scalar(workspace_id, pa.string()), n)
    names = pa.array(comp_name, pa.string())
    component = pa.array(res.component)
    nodes = graph.node_keys
    identities = pa.table(
        {
            "workspace_id": ws,
            "kind": kind_col,
            "value": value_col,
            "customer_id": node_customers,
            "component_id": names.take(component),
            "source_id": graph.source_id,
            "account_source_id": graph.account_source,
            "first_seen_at": pa.array(graph.first_seen, TS),
            "last_seen_at": pa.array(graph.last_seen, TS),
            "node": nodes,
            "component": keys_of(names).take(component) if n else pa.array([], pa.int64()),
        }
    )
    links = link_rows(workspace_id, graph, now)
    an = graph.anchors
    missing = pa.array(an.node, mask=an.node < 0)
    anchors = pa.table(
        {
            "workspace_id": pa.repeat(pa.scalar(workspace_id, pa.string()), len(an)),
            "anchor_id": an.anchor_id,
            "source_id": an.source_id,
            "user_id": an.user_id,
            "anonymous_id": an.anonymous_id,
            "kind": kind_col.take(missing) if n else pa.nulls(len(an), pa.string()),
            "value": value_col.take(missing) if n else pa.nulls(len(an), pa.string()),
            "provisional_id": an.provisional_id,
            "customer_id": anchor_customers,
            "first_seen_at": pa.array(an.first_seen, TS),
            "node": nodes.take(missing) if n else pa.nulls(len(an), pa.int64()),
            "sender": an.sender,
        }
    ).cast(_anchor_schema())
    conflicts = conflict_rows(workspace_id, graph, res, now)
    return GraphRows(identities, links, anchors, conflicts)


def conflict_rows(workspace_id: str, graph: Graph, res: Resolution, now: datetime) -> pa.Table:
    """The ``identity_conflicts`` rows of a resolution: the graph's refused values, then the
    links the rules held back. The conflicts' kinds and values are taken column-wise (a
    Python string per key and conflict cost 0.04 s of a 10,000-event batch at 1M)."""
    kind_col, value_col = graph.key_parts
    refused = graph.refused
    nodes = pa.array([c.node for c in res.conflicts], pa.int64())
    others = pa.array([c.other for c in res.conflicts], pa.int64())
    kind: list[str | None] = [k for k, _, _, _ in refused]
    value: list[str | None] = [v[:320] for _, v, _, _ in refused]
    other_kind: list[str | None] = [None] * len(refused)
    other_value: list[str | None] = [None] * len(refused)
    if len(nodes):
        kind += kind_col.take(nodes).to_pylist()
        value += value_col.take(nodes).to_pylist()
        other_kind += kind_col.take(others).to_pylist()
        other_value += value_col.take(others).to_pylist()
    message = [m or None for _, _, _, m in refused] + [c.message_id for c in res.conflicts]
    rule = ["blocked" if "blocked by pattern" in r else "invalid" for _, _, r, _ in refused]
    rule += [c.rule for c in res.conflicts]
    reason = [r for _, _, r, _ in refused] + [c.reason for c in res.conflicts]
    n = len(kind)
    return pa.table(
        {
            "workspace_id": pa.repeat(pa.scalar(workspace_id, pa.string()), n),
            "conflict_id": pa.array(
                [
                    short_hash(workspace_id, str(k), str(v), str(ok), str(ov), r, prefix="idc_")
                    for k, v, ok, ov, r in zip(
                        kind, value, other_kind, other_value, rule, strict=True
                    )
                ],
                pa.string(),
            ),
            "kind": pa.array(kind, pa.string()),
            "value": pa.array(value, pa.string()),
            "other_kind": pa.array(other_kind, pa.string()),
            "other_value": pa.array(other_value, pa.string()),
            "message_id": pa.array(message, pa.string()),
            "rule": pa.array(rule, pa.string()),
            "reason": pa.array(reason, pa.string()),
            "status": pa.repeat(pa.scalar("open", pa.string()), n),
            "created_at": pa.repeat(pa.scalar(now, TS), n),
        }
    )


def link_rows(workspace_id: str, graph: Graph, now: datetime) -> pa.Table:
    """The ``identity_links`` rows of a graph: they depend on the graph alone, not on how it
    resolves."""
    kind_col, value_col = graph.key_parts
    m = len(graph.link_a)
    a, b = pa.array(graph.link_a), pa.array(graph.link_b)
    return pa.table(
        {
            "workspace_id": pa.repeat(pa.scalar(workspace_id, pa.string()), m),
            "kind_a": kind_col.take(a),
            "value_a": value_col.take(a),
            "kind_b": kind_col.take(b),
            "value_b": value_col.take(b),
            "message_id": graph.link_message,
            "rule": graph.link_rule,
            "seen_at": pa.array(graph.link_seen, TS),
            "created_at": pa.repeat(pa.scalar(now, TS), m),
            "node_a": graph.node_keys.take(a),
            "node_b": graph.node_keys.take(b),
        }
    )


def _anchor_schema() -> pa.Schema:
    return pa.schema(
        [
            (c, pa.string())
            for c in ("workspace_id", "anchor_id", "source_id", "user_id", "anonymous_id")
        ]
        + [(c, pa.string()) for c in ("kind", "value", "provisional_id", "customer_id")]
        + [("first_seen_at", TS), ("node", pa.int64()), ("sender", pa.int64())]
    )


REPOINTED = (schema.events, schema.orders, schema.consents)
_UPDATED_BY_KEY = {"orders": "order_id", "consents": "consent_id"}
"""Tables whose rows are re-pointed by their key: the new customer of each row is found
first, then the update joins on the key. DuckDB's update driven straight by the anchors join
took 16.9 s for 59k orders of the 50k demo (0.1 s by the key), while for the events of the
1M benchmark the key-joined form took 137 s against 4-5 s: each table keeps the faster form."""


def repoint(
    conn: sa.Connection,
    workspace_id: str,
    anchors: pa.Table | None = None,
    *,
    received_from: datetime | None = None,
    tables: Sequence[sa.Table] = REPOINTED,
) -> dict[str, int]:
    """Point events, orders and consents (or only ``tables``) at their resolved customer
    (set-based, both engines).

    ``anchors`` (rows of ``identity_anchors`` as the run wrote them: an incremental run's
    senders) limits the work to those senders, and is read as given: looking the ids up in the
    stored anchors scanned that table six times per batch (0.2 of a 1M batch's 0.33 s here).
    ``received_from`` limits it to the events received since then (zone maps prune the rest on
    DuckDB).
    """
    changed: dict[str, int] = {}
    source, staged = "identity_anchors", None
    if anchors is not None:
        if not anchors.num_rows:
            return {table.name: 0 for table in tables}
        columns = ["workspace_id", "source_id", "user_id", "anonymous_id", "customer_id"]
        staged = stage(conn, t.identity_anchors, anchors.select(columns))
        source = staged
    for table in tables:
        name = table.name
        total = 0
        params: dict[str, Any] = {"ws": workspace_id}
        since = ""
        if received_from is not None and table is schema.events:
            since = " AND x.received_at >= :since"
            params["since"] = received_from
        for mine, cond in (
            ("b.user_id IS NOT NULL", "x.user_id = a.user_id "
             "AND coalesce(x.source_id, '') = coalesce(a.source_id, '')"),
            ("b.user_id IS NULL", "x.user_id IS NULL AND x.anonymous_id = a.anonymous_id"),
        ):  # fmt: skip
            by = (
                "(SELECT b.user_id, b.source_id, b.anonymous_id, b.customer_id "
                f"FROM {source} b WHERE b.workspace_id = :ws AND {mine}) AS a"
            )
            changes = "(x.customer_id IS NULL OR x.customer_id <> a.customer_id)"
            key = _UPDATED_BY_KEY.get(name)
            if key is None:
                sql = (
                    f"UPDATE {name} AS x SET customer_id = a.customer_id FROM {by} "
                    f"WHERE x.workspace_id = :ws AND {cond}{since} AND {changes}"
                )
            else:
                sql = (
                    f"UPDATE {name} AS y SET customer_id = m.customer_id FROM (SELECT x.{key}, "
                    f"a.customer_id FROM {name} x JOIN {by} ON {cond} "
                    f"WHERE x.workspace_id = :ws{since} AND {changes}) AS m "
                    f"WHERE y.workspace_id = :ws AND y.{key} = m.{key}"
                )
            with _hash_joined(conn, since != ""):
                result = conn.execute(sa.text(sql), params)
            total += max(result.rowcount, 0)
        changed[name] = total
    if staged is not None:
        unstage(conn, staged)
    return changed


def repoint_moved_events(
    conn: sa.Connection, workspace_id: str, moved: pa.Table, stored: pa.Table
) -> int:
    """Point the events of senders whose customer changed at their new customer; ``moved``
    holds each sender's anchor columns and ``was``, its customer before the run, and
    ``stored`` the run's stored anchors (every sender of each ``was`` customer: a customer
    is one stored group, and the run read its whole component). Return the events changed.

    A resolved event points at its sender's customer, so the events to move are among those
    of the ``was`` customers (an event not resolved yet still points at its provisional id
    and is re-pointed when its own batch resolves it). On PostgreSQL one update joins them
    with the senders. On DuckDB any statement that reads the events' sender columns scans
    those strings over the whole table, so the events are found by the customer column
    alone (their row ids); a former customer every sender of which moved to one same
    customer (a merge: the usual case) moves whole, and only the few rows of a customer
    whose senders went different ways (a split) are read for their senders, by row id. The
    update then joins on the row id. At 1M customers (7.1M events) the update that compared
    senders took 0.19-0.28 s a batch; the customer column's join takes 0.06-0.08 s, a read
    by row id of a hundred rows 0.002 s, and the update by row id 0.02-0.06 s.
    """
    if conn.dialect.name != "duckdb":
        return _repoint_senders_events(conn, workspace_id, moved)
    whole = _whole_moves(moved, stored)
    wases = pc.unique(moved.column("was").cast(pa.string()))
    found = _rowids_of(conn, workspace_id, wases)
    targets = [
        found.join(whole, "was", join_type="inner", use_threads=False).select(["r", "customer_id"])
    ]
    parted = found.filter(pc.invert(pc.is_in(found.column("was"), whole.column("was"))))
    if parted.num_rows:
        targets.append(_senders_targets(conn, parted.column("r"), moved))
    rows = pa.concat_tables(targets)
    if not rows.num_rows:
        return 0
    name = stage(conn, schema.events, rows)
    try:
        result = conn.execute(
            sa.text(
                f"UPDATE events AS x SET customer_id = m.customer_id FROM {name} m "
                "WHERE x.rowid = m.r"
            )
        )
    finally:
        unstage(conn, name)
    return max(result.rowcount, 0)


def _rowids_of(conn: sa.Connection, workspace_id: str, customers: pa.Array) -> pa.Table:
    """(r, was): the row id of every event of the ``customers`` and that customer (DuckDB)."""
    name = stage(conn, schema.events, pa.table({"was": customers}))
    try:
        found = query_arrow(
            conn,
            f"SELECT x.rowid AS r, x.customer_id AS was FROM events x JOIN {name} a "
            "ON x.customer_id = a.was WHERE x.workspace_id = :ws",
            {"ws": workspace_id},
        )
    finally:
        unstage(conn, name)
    return pa.table({"r": found.column("r").cast(pa.int64()), "was": found.column("was")}).cast(
        pa.schema([("r", pa.int64()), ("was", pa.string())])
    )


def _senders_targets(conn: sa.Connection, rowids: pa.ChunkedArray, moved: pa.Table) -> pa.Table:
    """(r, customer_id) of the events at ``rowids`` whose sender is one of ``moved`` (their
    sender columns read by row id), compared as :func:`_repoint_senders_events` does."""
    name = stage(conn, schema.events, pa.table({"r": rowids}))
    try:
        events = query_arrow(
            conn,
            f"SELECT x.rowid AS r, x.customer_id, x.user_id, x.source_id, x.anonymous_id "
            f"FROM events x JOIN {name} p ON x.rowid = p.r",
            {},
        )
    finally:
        unstage(conn, name)
    senders = moved.select(["source_id", "user_id", "anonymous_id", "customer_id", "was"])
    return arrow_query(
        f"SELECT x.r, a.customer_id FROM x JOIN a ON x.customer_id = a.was AND ({SAME_SENDER})",
        x=events,
        a=senders,
    )


SAME_SENDER = (
    "(a.user_id IS NOT NULL AND x.user_id = a.user_id "
    "AND coalesce(x.source_id, '') = coalesce(a.source_id, '')) "
    "OR (a.user_id IS NULL AND x.user_id IS NULL AND x.anonymous_id = a.anonymous_id)"
)
"""An event ``x`` is a sender ``a``'s: its userId and source, or without a userId its
anonymousId (the anchors' sender ids)."""


def _whole_moves(moved: pa.Table, stored: pa.Table) -> pa.Table:
    """(was, customer_id): the former customers every stored sender of which moved to one
    same customer."""
    had = (
        pa.table({"was": stored.column("customer_id").cast(pa.string())})
        .group_by("was", use_threads=False)
        .aggregate([([], "count_all")])
    )
    went = (
        pa.table(
            {
                "was": moved.column("was").cast(pa.string()),
                "customer_id": moved.column("customer_id").cast(pa.string()),
            }
        )
        .group_by(["was", "customer_id"], use_threads=False)
        .aggregate([([], "count_all")])
        .rename_columns(["was", "customer_id", "went"])
    )
    joined = went.join(had, "was", join_type="inner", use_threads=False)
    whole = joined.filter(pc.equal(joined.column("went"), joined.column("count_all")))
    return whole.select(["was", "customer_id"])


def _repoint_senders_events(conn: sa.Connection, workspace_id: str, moved: pa.Table) -> int:
    """Point the events of the ``moved`` senders among those of their ``was`` customers at
    their new customer, each event's sender compared (a split customer's senders go different
    ways)."""
    staged = stage(
        conn,
        t.identity_anchors,  # ``was`` staged as the anchors' provisional_id column
        pa.table(
            {
                "workspace_id": moved.column("workspace_id"),
                "source_id": moved.column("source_id"),
                "user_id": moved.column("user_id"),
                "anonymous_id": moved.column("anonymous_id"),
                "customer_id": moved.column("customer_id"),
                "provisional_id": moved.column("was"),
            }
        ),
    )
    try:
        result = conn.execute(
            sa.text(
                f"UPDATE events AS x SET customer_id = a.customer_id FROM {staged} a "
                "WHERE x.workspace_id = :ws AND x.customer_id = a.provisional_id "
                f"AND ({SAME_SENDER})"
            ),
            {"ws": workspace_id},
        )
    finally:
        unstage(conn, staged)
    return max(result.rowcount, 0)


@contextmanager
def _hash_joined(conn: sa.Connection, recent: bool) -> Iterator[None]:
    """On PostgreSQL, no nested loop for a statement over the events received since a batch
    began (``recent``): those are newer than the table's statistics, so the planner takes them
    for one row and joins them to the staged senders by a nested loop, each event against
    every sender (27-31 s of a batch of 10,000 events at 200k customers). A hash join reads
    both once; the events come through their receipt-time index (migration 0022)."""
    if not recent or conn.dialect.name != "postgresql":
        yield
        return
    before = conn.exec_driver_sql("SHOW enable_nestloop").scalar()
    conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"SET LOCAL enable_nestloop = {'on' if before == 'on' else 'off'}")


_CUSTOMER_COLUMNS = [c.name for c in schema.customers.columns]


def _customers_table(rows: list[dict[str, Any]]) -> pa.Table:
    import orjson

    data: dict[str, pa.Array] = {}
    for col in schema.customers.columns:
        values = [r.get(col.name) for r in rows]
        if col.name == "traits":
            values = [orjson.dumps(v).decode() if isinstance(v, dict) else v for v in values]
        data[col.name] = pa.array(values, arrow_type(col))
    return pa.table(data)


def _as_dict(value: Any) -> dict[str, Any]:
    import orjson

    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        loaded = orjson.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return {}


@dataclass
class CustomerMoves:
    """What :func:`merge_customers` did: rows folded (old -> survivor) and rows brought back."""

    merged: list[tuple[str, str]] = field(default_factory=list)
    """(old customer id, surviving customer id) per customer row folded away."""
    revived: list[tuple[str, str]] = field(default_factory=list)
    """(customer id it had been merged into, revived customer id) per customer a split restored."""


def merge_customers(
    conn: sa.Connection,
    workspace_id: str,
    now: datetime,
    pairs: pa.Table | None = None,
    passive: pa.Array | None = None,
) -> CustomerMoves:
    """Restore archived survivors, then fold merged customers' rows into their survivor.

    ``pairs`` (an incremental run): the (provisional_id, customer_id) pairs of the run's
    anchors; only those are looked at instead of every stored anchor. ``passive``: the
    provisional ids of senders that never acted themselves (only events about the customer,
    such as message statuses, came under them): their rows' seen times are those events', so
    a survivor takes its seen times from the other rows.
    """
    moves = CustomerMoves()
    staged = None
    ws = {"ws": workspace_id}
    if pairs is None:
        survivors = "SELECT customer_id FROM identity_anchors WHERE workspace_id = :ws"
        merged = (
            "SELECT DISTINCT provisional_id, customer_id AS target FROM identity_anchors "
            "WHERE workspace_id = :ws AND provisional_id <> customer_id"
        )
    else:
        if pairs.num_rows == 0:
            return moves
        staged = stage(conn, t.identity_anchors, pairs)
        survivors = f"SELECT customer_id FROM {staged}"
        merged = (
            f"SELECT DISTINCT provisional_id, customer_id AS target FROM {staged} "
            "WHERE provisional_id <> customer_id"
        )
    quiet = None
    if passive is not None and len(passive):
        quiet = stage(conn, schema.customers, pa.table({"customer_id": passive.cast(pa.string())}))
    try:
        return _merge_customers(conn, workspace_id, now, moves, survivors, merged, ws, quiet)
    finally:
        for name in (staged, quiet):
            if name is not None:
                unstage(conn, name)


def _merge_customers(
    conn: sa.Connection,
    workspace_id: str,
    now: datetime,
    moves: CustomerMoves,
    survivors: str,
    merged: str,
    ws: dict[str, str],
    passive: str | None,
) -> CustomerMoves:
    c, arc = schema.customers, t.identity_customer_archive
    restore = conn.execute(
        sa.text(
            "SELECT record, merged_into FROM identity_customer_archive r "
            f"WHERE r.workspace_id = :ws AND r.customer_id IN ({survivors})"
            " AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.workspace_id = :ws "
            "AND c.customer_id = r.customer_id)"
        ),
        ws,
    ).all()
    if restore:
        rows = [_revive(_as_dict(r[0])) for r in restore]
        moves.revived = [
            (str(r[1]), str(row["customer_id"])) for r, row in zip(restore, rows, strict=True)
        ]
        append(conn, c, _customers_table(rows))
        conn.execute(
            arc.delete().where(
                arc.c.workspace_id == workspace_id,
                arc.c.customer_id.in_([r["customer_id"] for r in rows]),
            )
        )
    return _fold_merged(conn, workspace_id, now, moves, merged, ws, passive)


FOLD_TARGETS = 50_000
"""Survivors folded per round: their rows and their members' are Python dicts only then (the
1M-customer demo folds about 2M provisional customers into 1M survivors; all at once took more
than 20 GB)."""

_fold_tables = count()


def _fold_merged(
    conn: sa.Connection,
    workspace_id: str,
    now: datetime,
    moves: CustomerMoves,
    merged: str,
    ws: dict[str, str],
    passive: str | None,
) -> CustomerMoves:
    """Fold each merged customer's row into its survivor's, archive it and delete it.

    The rows are first copied aside (one temporary table: every round reads them as they were
    before any write, as a single pass would), then folded FOLD_TARGETS survivors at a time,
    ordered by survivor, so a survivor's group is never split between rounds. Rows of the
    staged ``passive`` customers are marked there (see :func:`merge_customers`).
    """
    name = f"siyu_fold_{next(_fold_tables)}"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    conn.execute(
        sa.text(
            f"CREATE TEMPORARY TABLE {name} AS SELECT m.target AS fold_target, "
            "0 AS fold_member, false AS fold_passive, c.* FROM customers c "
            f"JOIN ({merged}) m ON c.customer_id = m.provisional_id WHERE c.workspace_id = :ws"
        ),
        ws,
    )
    # No try/finally: after a failed statement PostgreSQL refuses every other one until the
    # rollback, which drops the table with the transaction anyway (DuckDB's catalog too).
    conn.execute(
        sa.text(
            f"INSERT INTO {name} SELECT c.customer_id, 1, false, c.* FROM customers c "
            f"WHERE c.workspace_id = :ws AND c.customer_id IN "
            f"(SELECT fold_target FROM {name})"
        ),
        ws,
    )
    if passive is not None:
        conn.exec_driver_sql(
            f"UPDATE {name} SET fold_passive = true "
            f"WHERE customer_id IN (SELECT customer_id FROM {passive})"
        )
    targets = [
        str(r[0])
        for r in conn.exec_driver_sql(
            f"SELECT DISTINCT fold_target FROM {name} WHERE fold_member = 0 ORDER BY 1"
        )
    ]
    for lo in range(0, len(targets), FOLD_TARGETS):
        part = targets[lo : lo + FOLD_TARGETS]
        _fold_round(conn, workspace_id, now, moves, name, part[0], part[-1])
    conn.execute(
        sa.text(
            "DELETE FROM customers WHERE workspace_id = :ws AND customer_id IN "
            f"(SELECT customer_id FROM {name} WHERE fold_member = 0)"
        ),
        ws,
    )
    conn.exec_driver_sql(f"DROP TABLE {name}")
    return moves


def _fold_round(
    conn: sa.Connection,
    workspace_id: str,
    now: datetime,
    moves: CustomerMoves,
    name: str,
    first: str,
    last: str,
) -> None:
    """Fold the survivors ``first``..``last`` (in id order) of the rows copied aside."""
    found = conn.execute(
        sa.text(
            f"SELECT * FROM {name} WHERE fold_target >= :first AND fold_target <= :last "
            "ORDER BY fold_member DESC, fold_target, customer_id"
        ),
        {"first": first, "last": last},
    ).all()
    current: dict[str, dict[str, Any]] = {}
    members: list[dict[str, Any]] = []
    into: list[str] = []
    passive: set[str] = set()
    for r in found:
        row = dict(r._mapping)
        target = row.pop("fold_target")
        if row.pop("fold_passive"):
            passive.add(row["customer_id"])
        if row.pop("fold_member"):
            current[target] = row
        else:
            into.append(target)
            members.append(row)
    if not members:
        return
    by_target: dict[str, list[dict[str, Any]]] = {}
    for m, target in zip(members, into, strict=True):
        by_target.setdefault(target, []).append(m)
    merged_rows = []
    for target, group in by_target.items():
        rows = ([current[target]] if target in current else []) + group
        merged_rows.append(_fold(target, rows, now, passive))
    _replace_customers(conn, workspace_id, _customers_table(merged_rows))
    import orjson

    archive = pa.table(
        {
            "workspace_id": pa.array([workspace_id] * len(members), pa.string()),
            "customer_id": pa.array([m["customer_id"] for m in members], pa.string()),
            "merged_into": pa.array(into, pa.string()),
            "record": pa.array(
                [orjson.dumps(m, default=str).decode() for m in members], pa.string()
            ),
            "archived_at": pa.array([now] * len(members), TS),
        }
    )
    upsert(
        conn,
        t.identity_customer_archive,
        archive,
        ["workspace_id", "customer_id"],
        {
            "merged_into": "excluded.merged_into",
            "record": "excluded.record",
            "archived_at": "excluded.archived_at",
        },
    )
    moves.merged.extend(
        (str(m["customer_id"]), target) for m, target in zip(members, into, strict=True)
    )


def _replace_customers(conn: sa.Connection, workspace_id: str, rows: pa.Table) -> None:
    """Write whole customer rows over the stored ones with the same ids (or as new ones).

    DuckDB: a delete of those ids and a plain insert. Its ``ON CONFLICT DO UPDATE`` of every
    column took 16 s for 55k customers on a customers table left by ingestion (many small
    updated chunks; 0.2 s once the rows had been rewritten), the delete and insert 0.3 s.
    PostgreSQL keeps the upsert.
    """
    c = schema.customers
    if conn.dialect.name != "duckdb":
        upsert(
            conn,
            c,
            rows,
            ["workspace_id", "customer_id"],
            {
                col: f"excluded.{col}"
                for col in _CUSTOMER_COLUMNS
                if col not in ("workspace_id", "customer_id")
            },
        )
        return
    if rows.num_rows == 0:
        return
    name = stage(conn, c, rows.select(["customer_id"]))
    try:
        conn.execute(
            sa.text(
                "DELETE FROM customers WHERE workspace_id = :ws "
                f"AND customer_id IN (SELECT customer_id FROM {name})"
            ),
            {"ws": workspace_id},
        )
    finally:
        unstage(conn, name)
    append(conn, c, rows)


def _revive(record: dict[str, Any]) -> dict[str, Any]:
    """An archived row back to column values (timestamps and dates were stored as text)."""
    out = dict(record)
    for col in schema.customers.columns:
        value = out.get(col.name)
        if isinstance(value, str) and isinstance(col.type, sa.DateTime):
            out[col.name] = datetime.fromisoformat(value)
        elif isinstance(value, str) and isinstance(col.type, sa.Date):
            out[col.name] = datetime.fromisoformat(value).date()
    return out


def _fold(
    target: str, rows: list[dict[str, Any]], now: datetime, passive: Collection[str] = ()
) -> dict[str, Any]:
    """Survivorship: earliest first seen, latest last seen, most recent non-empty value.

    "Most recent" is by when the traits were said (``traits_at``; rows without one first),
    then by last seen, so a row that only arrived later does not win with older traits. Seen
    times come from the rows of senders that acted themselves (not in ``passive``), when
    there is one: a WhatsApp status row merged into a customer must not make her look seen
    the day siyu's message was delivered.
    """
    ordered = sorted(
        rows,
        key=lambda r: (
            r.get("traits_at") is not None,
            r.get("traits_at") or r["last_seen_at"],
            r["last_seen_at"],
            r["customer_id"],
        ),
    )
    out: dict[str, Any] = {"workspace_id": rows[0]["workspace_id"], "customer_id": target}
    traits: dict[str, Any] = {}
    for row in ordered:
        for col in _CUSTOMER_COLUMNS:
            if col in ("workspace_id", "customer_id", "traits"):
                continue
            if row.get(col) not in (None, ""):
                out[col] = row[col]
        traits.update({k: v for k, v in _as_dict(row.get("traits")).items() if v not in (None, "")})
    acting = [r for r in rows if r["customer_id"] not in passive] or rows
    out["first_seen_at"] = min(r["first_seen_at"] for r in acting)
    out["last_seen_at"] = max(r["last_seen_at"] for r in acting)
    said = [r["traits_at"] for r in rows if r.get("traits_at") is not None]
    out["traits_at"] = max(said) if said else None
    out["traits"] = traits or None
    out["updated_at"] = now
    return out

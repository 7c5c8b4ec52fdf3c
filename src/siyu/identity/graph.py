"""One-ID runs: full rebuild, incremental batches, and operator splits.

A full run rebuilds the graph of a workspace from its events. An incremental run reads the new
events plus every event of the senders whose components they touch, which is exactly the full
graph restricted to those components (every event touching a node links it to the event's sender),
so both paths give the same customers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.compute.arrow_sql import arrow_query
from siyu.errors import InvalidInput
from siyu.identity import tables as t
from siyu.identity.consents import apply_merge_consents, clear_merge_consents
from siyu.identity.corroborate import TYPO_RULE
from siyu.identity.diff import ROWID, Changes, write_changes
from siyu.identity.extract import (
    SEP,
    Graph,
    Ints,
    Memo,
    build_graph,
    fetch_sender_tuples,
    fetch_tuples,
    graph_keys,
    query_arrow,
    refresh_tuples,
    store_tuples,
)
from siyu.identity.follow import follow_merges, follow_splits
from siyu.identity.keys import keys_of
from siyu.identity.kind import get_kind
from siyu.identity.resolve import Resolution, resolve
from siyu.identity.store import (
    REPOINTED,
    CustomerMoves,
    customer_ids,
    graph_rows,
    merge_customers,
    repoint,
    short_hash,
    write_graph,
)
from siyu.identity.suggest import add_operator_links
from siyu.store import schema
from siyu.store.bulk import analyze, append, stage, unstage


@dataclass
class ResolveReport:
    identifiers: int = 0
    links: int = 0
    customers: int = 0
    merges: int = 0
    conflicts: int = 0
    refused: int = 0
    repointed: dict[str, int] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _region(conn: sa.Connection, workspace_id: str) -> str | None:
    w = schema.workspaces
    found = conn.execute(
        sa.select(w.c.default_region).where(w.c.workspace_id == workspace_id)
    ).scalar()
    return str(found) if found else None


def _detached(conn: sa.Connection, workspace_id: str, graph: Graph) -> list[int]:
    o = t.identity_overrides
    rows = conn.execute(
        sa.select(o.c.kind, o.c.value).where(
            o.c.workspace_id == workspace_id, o.c.action == "detach"
        )
    ).all()
    if not rows:  # the usual case: no index of every key (seconds at 1M customers)
        return []
    wanted = pa.array([f"{k}{SEP}{v}" for k, v in rows], pa.string())
    found = pc.index_in(graph.key_array, value_set=wanted)
    return [int(i) for i in np.flatnonzero(pc.is_valid(found).to_numpy(zero_copy_only=False))]


def resolve_workspace(
    conn: sa.Connection, workspace_id: str, *, windows: Mapping[str, int] | None = None
) -> ResolveReport:
    """Rebuild the identity graph of a workspace from all its events and apply it.

    ``windows`` is the ``identity_limit_windows`` setting (kind -> days); every path that
    resolves a workspace must pass the same one, or full and incremental runs could differ.
    The background resolver's watermark moves past the events the rebuild reads, so ``siyu
    serve`` does not resolve that history again; the events of its look-back window are
    recorded before the read (``hook.record_rebuild_window``). The workspace's
    ``identity_tuples`` are refreshed from the same read (only rows that differ are written),
    by the database while Python builds the graph: on two cores the refresh
    (DuckDB's or PostgreSQL's work, without the GIL) costs no wall time. Only the worker
    thread uses the connection until it is done.
    """
    from siyu.identity.hook import move_watermark, newest_received, record_rebuild_window

    read_at = _now()  # before ``until``: what arrived OVERLAP before it was committed
    until = newest_received(conn, workspace_id)  # before the read: nothing newer is covered
    mark = None if until is None else record_rebuild_window(conn, workspace_id, until, read_at)
    tuples = fetch_tuples(conn, workspace_id)
    region = _region(conn, workspace_id)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-tuples") as pool:
        refreshed = pool.submit(refresh_tuples, conn, workspace_id, tuples)
        graph = build_graph(workspace_id, tuples, region)
        refreshed.result()
    del tuples
    previous = _old_mapping(conn, workspace_id)
    for table in (t.identities, t.identity_links, t.identity_anchors, t.identity_conflicts):
        conn.execute(table.delete().where(table.c.workspace_id == workspace_id))
    report = _apply(conn, workspace_id, graph, previous, windows=windows)
    if mark is not None:
        move_watermark(conn, workspace_id, mark)
    return report


def resolve_new_events(
    conn: sa.Connection,
    workspace_id: str,
    message_ids: Sequence[str],
    *,
    windows: Mapping[str, int] | None = None,
    received_from: datetime | None = None,
) -> ResolveReport:
    """Resolve a newly ingested batch, touching only the components it reaches.

    The pipeline hook: call after a chunk's events are stored, in the same transaction.
    ``received_from`` (when the caller knows it) is the earliest receipt time of the batch's
    events: the events are then read by their receipt time, which DuckDB prunes by zone maps,
    instead of a scan of every stored message id.

    Each large table is read as few times as the lookups allow (DuckDB has no index lookups for
    a set of keys: every lookup is a scan of the table's columns): the identities of the
    reached components once, the anchors on them once, the history of their senders from
    ``identity_tuples`` (an integer join) together with the batch's tuples, which are then
    recorded there.
    """
    if not message_ids:
        return ResolveReport()
    region = _region(conn, workspace_id)
    batch = fetch_tuples(conn, workspace_id, message_ids, since=received_from)
    memo: Memo = {}
    first = graph_keys(batch, region, memo)
    # Generic userIds and alias previousIds are read against other senders' raw ids, so senders
    # with the same raw id are affected too, even when no identity node is shared yet.
    raw = sorted(_raw_ids(batch))
    # A sender seen for the first time can be the one an older alias named (its previousId was
    # then read as a user_id of the alias's source): a full run links them now, so the alias's
    # sender belongs to the graph. Found before the components are read, so that one look-up
    # reaches them all (a second round of look-ups cost 0.46 s of a 2.6 s batch at 1M). (Raw
    # ids of the senders' history need no look-up: each was looked up when its batch was
    # resolved, and a later sender with the same raw id is found by its own batch's look-up.)
    senders = batch.column("sender").combine_chunks()
    named = _aliases(
        conn, workspace_id, _new_sender_ids(batch, _with_history(conn, workspace_id, senders))
    )
    probed = sorted({*first, *named})
    reached = _reached(conn, workspace_id, probed, raw)
    tuples, had_history = fetch_sender_tuples(
        conn,
        workspace_id,
        pc.unique(pa.concat_arrays([reached.anchors.column("sender").combine_chunks(), senders])),
        batch,
    )
    store_tuples(conn, workspace_id, batch)
    graph = build_graph(workspace_id, tuples, region, memo)
    del tuples
    old = _stored(conn, workspace_id, graph, probed, reached, had_history)
    return _apply(
        conn,
        workspace_id,
        graph,
        _mapping_of(old.anchors),
        windows=windows,
        old=old,
        received_from=received_from,
    )


def _with_history(conn: sa.Connection, workspace_id: str, senders: pa.Array) -> pa.Array:
    """Those of ``senders`` (hashes) with a stored tuple (a scan of one integer column)."""
    name = stage(conn, t.identity_tuples, pa.table({"sender": pc.unique(senders)}))
    try:
        found = query_arrow(
            conn,
            "SELECT DISTINCT x.sender FROM identity_tuples x WHERE x.workspace_id = :ws "
            f"AND x.sender IN (SELECT sender FROM {name})",
            {"ws": workspace_id},
        )
    finally:
        unstage(conn, name)
    return found.column("sender").combine_chunks().cast(pa.int64())


def _new_sender_ids(batch: pa.Table, had_history: pa.Array) -> list[str]:
    """The raw userIds and anonymousIds of the batch's senders that had no stored tuple."""
    fresh = batch.filter(pc.invert(pc.is_in(batch.column("sender"), had_history)))
    return sorted(
        {
            str(v)
            for c in ("user_id", "anonymous_id")
            for v in pc.unique(fresh.column(c).combine_chunks()).drop_null().to_pylist()
            if v
        }
    )


def _aliases(conn: sa.Connection, workspace_id: str, names: list[str]) -> list[str]:
    """The nodes ('kind<US>value') of the senders whose stored aliases name one of ``names``
    as their previousId (a scan of the tuples' previousIds, mostly empty; the anchors are
    joined on the sender hash, an integer, not on their ids)."""
    if not names:
        return []
    name = stage(conn, t.identity_anchors, pa.table({"user_id": pa.array(names, pa.string())}))
    try:
        found = query_arrow(
            conn,
            "SELECT DISTINCT a.kind, a.value FROM identity_anchors a JOIN (SELECT DISTINCT "
            "x.sender FROM identity_tuples x WHERE x.workspace_id = :ws "
            f"AND x.previous_id IN (SELECT user_id FROM {name})) s ON s.sender = a.sender "
            "WHERE a.workspace_id = :ws AND a.kind IS NOT NULL",
            {"ws": workspace_id},
        )
    finally:
        unstage(conn, name)
    if found.num_rows == 0:
        return []
    return [str(k) for k in _key_text(found).to_pylist()]


def _raw_ids(tuples: pa.Table) -> set[str]:
    """The raw userIds and previousIds of tuples (looked up against other senders' raw ids)."""
    return {
        str(v)
        for c in ("user_id", "previous_id")
        for v in pc.unique(tuples.column(c).combine_chunks()).drop_null().to_pylist()
        if v
    }


def _nodes_of(graph: Graph) -> pa.Table:
    """(kind, value, node key) of a graph's nodes."""
    kind, value = graph.key_parts
    return pa.table({"kind": kind, "value": value, "node": graph.node_keys})


def _node_columns(rows: pa.Table) -> pa.Table:
    """(kind, value, node key) of stored rows, typed as :func:`_nodes_of` types them."""
    return pa.table(
        {
            "kind": rows.column("kind").cast(pa.string()),
            "value": rows.column("value").cast(pa.string()),
            "node": rows.column("node").cast(pa.int64()),
        }
    )


@dataclass
class _Stored:
    """The stored rows an incremental graph replaces (DuckDB: each with its ``rowid``)."""

    identities: pa.Table
    links: pa.Table
    anchors: pa.Table
    conflicts: pa.Table


def _arrow_type(column: sa.Column[object]) -> pa.DataType:
    if isinstance(column.type, sa.DateTime):
        return pa.timestamp("us")
    if isinstance(column.type, sa.BigInteger):
        return pa.int64()
    return pa.string()


def _typed(rows: pa.Table, table: sa.Table) -> pa.Table:
    """Stored rows with the table's Arrow types (a PostgreSQL result without rows has none;
    DuckDB may hand strings over as views)."""
    types = {c.name: _arrow_type(c) for c in table.columns}
    types[ROWID] = pa.int64()
    return pa.table(
        {
            name: rows.column(name).cast(types[name])
            if rows.column(name).type != types[name]
            else rows.column(name)
            for name in rows.column_names
        }
    )


def _select(conn: sa.Connection, alias: str) -> str:
    """A stored row's columns, with its rowid on DuckDB (rows are then deleted by rowid)."""
    rowid = f"{alias}.rowid AS {ROWID}, " if conn.dialect.name == "duckdb" else ""
    return f"{rowid}{alias}.*"


def _reached(conn: sa.Connection, workspace_id: str, keys: list[str], raw: list[str]) -> _Stored:
    """The stored components a batch reaches (through its identifiers, or senders whose raw
    id it names): their identities and the anchors on them, each read once, with rowids."""
    ws = {"ws": workspace_id}
    probe = keys_of(pa.array(keys, pa.string()))
    if raw:
        rname = stage(conn, t.identity_anchors, pa.table({"user_id": pa.array(raw, pa.string())}))
        try:
            # Two equality joins, not one ON ... OR ...: an OR join is a nested loop.
            named = query_arrow(
                conn,
                " UNION ".join(
                    f"SELECT a.node FROM identity_anchors a JOIN {rname} r "
                    f"ON r.user_id = a.{column} WHERE a.workspace_id = :ws AND a.node IS NOT NULL"
                    for column in ("user_id", "anonymous_id")
                ),
                ws,
            )
        finally:
            unstage(conn, rname)
        if named.num_rows:
            probe = pa.concat_arrays(
                [probe, named.column("node").combine_chunks().cast(pa.int64())]
            )
    name = stage(conn, t.identities, pa.table({"node": probe}))
    try:
        identities = _typed(
            query_arrow(
                conn,
                _component_identities_sql(conn, name),
                ws,
            ),
            t.identities,
        )
    finally:
        unstage(conn, name)
    anchors = _anchors_on(conn, workspace_id, identities)
    none = identities.slice(0, 0)
    return _Stored(identities, none, anchors, none)


def _anchors_on(conn: sa.Connection, workspace_id: str, identities: pa.Table) -> pa.Table:
    """The stored anchors whose node is one of ``identities`` (joined on the node key, then
    kept only where (kind, value) is one of them: a key collision must not add an anchor)."""
    nodes = pa.table({"node": identities.column("node").combine_chunks()})
    name = stage(conn, t.identities, nodes)
    try:
        found = _typed(
            query_arrow(
                conn,
                f"SELECT {_select(conn, 'a')} FROM identity_anchors a JOIN {name} n "
                "ON a.node = n.node WHERE a.workspace_id = :ws",
                {"ws": workspace_id},
            ),
            t.identity_anchors,
        )
    finally:
        unstage(conn, name)
    return _exactly(found, _key_text(identities), "")


def _exactly(rows: pa.Table, keys: pa.Array, *sides: str) -> pa.Table:
    """The rows whose (``kind{side}``, ``value{side}``) is one of ``keys`` ('kind<US>value')
    on any of ``sides``: rows found through a node key are checked against the exact node."""
    if rows.num_rows == 0:
        return rows
    keep: pa.Array | None = None
    for side in sides:
        text = _key_text(
            pa.table({"kind": rows.column(f"kind{side}"), "value": rows.column(f"value{side}")})
        )
        hit = pc.is_in(text, keys)
        keep = hit if keep is None else pc.or_(keep, hit)
    return rows.filter(keep)


def _stored(
    conn: sa.Connection,
    workspace_id: str,
    graph: Graph,
    probed: list[str],
    reached: _Stored,
    had_history: pa.Array,
) -> _Stored:
    """The stored rows the incremental graph replaces: the anchors of its senders, every
    identifier of the components its nodes or those anchors are in, and the links and
    conflicts of those identifiers (or of its own nodes).

    Most of it was read with the reached components: only senders with a history but no
    anchor on them, and identifiers outside them that were not ``probed`` (the batch's and the
    alias-named ones, whose absence the first look-up showed), are looked up again, which is
    rarely needed.
    """
    ws = {"ws": workspace_id}
    anchors = reached.anchors
    # Senders of the graph with a history whose anchor was not read (not on a reached node).
    missing = pc.filter(had_history, pc.invert(pc.is_in(had_history, anchors.column("sender"))))
    if len(missing):
        name = stage(conn, t.identity_tuples, pa.table({"sender": missing}))
        try:
            more = query_arrow(
                conn,
                f"SELECT {_select(conn, 'a')} FROM identity_anchors a WHERE a.workspace_id = :ws "
                f"AND a.sender IN (SELECT sender FROM {name})",
                ws,
            )
        finally:
            unstage(conn, name)
        anchors = pa.concat_tables([anchors, _typed(more, t.identity_anchors)])
    ids = graph.anchors.anchor_id
    anchors = anchors.filter(pc.is_in(anchors.column("anchor_id").cast(pa.string()), ids))
    identities = reached.identities
    own = _nodes_of(graph)
    probe = pa.concat_tables(
        [own, _node_columns(anchors.filter(pc.is_valid(anchors.column("kind"))))]
    )
    known = pa.concat_arrays(
        [
            _key_text(identities),
            pa.array(probed, pa.string()),
        ]
    )
    probe = probe.filter(pc.invert(pc.is_in(_key_text(probe), known)))
    if probe.num_rows:
        name = stage(conn, t.identities, probe.select(["node"]))
        try:
            more = query_arrow(
                conn,
                _component_identities_sql(conn, name),
                ws,
            )
        finally:
            unstage(conn, name)
        if more.num_rows:
            more = _typed(more, t.identities)
            seen = _key_text(identities.select(["kind", "value"]))
            more = more.filter(pc.invert(pc.is_in(_key_text(more), seen)))
            identities = pa.concat_tables([identities, _typed(more, t.identities)])
    gone = pa.concat_tables([own, _node_columns(identities)])
    gname = stage(conn, t.identities, gone)
    try:
        # A stored link joins two identifiers of one component unless an operator detached
        # one of them (components ignore a detached identifier's links): without detached
        # identifiers, the links of the gone identifiers are those whose first side is one.
        sides = ("a", "b") if _has_detached(conn, workspace_id) else ("a",)
        links = query_arrow(
            conn,
            " UNION ".join(
                f"SELECT {_select(conn, 'l')} FROM identity_links l JOIN {gname} g "
                f"ON g.node = l.node_{side} WHERE l.workspace_id = :ws"
                for side in sides
            ),
            ws,
        )
        conflicts = query_arrow(
            conn,
            f"SELECT {_select(conn, 'x')} FROM identity_conflicts x "
            f"WHERE x.workspace_id = :ws AND EXISTS (SELECT 1 FROM {gname} g "
            "WHERE g.kind = x.kind AND g.value = x.value)",
            ws,
        )
    finally:
        unstage(conn, gname)
    exact = _exactly(_typed(links, t.identity_links), _key_text(gone), *(f"_{s}" for s in sides))
    return _Stored(identities, exact, anchors, _typed(conflicts, t.identity_conflicts))


def _has_detached(conn: sa.Connection, workspace_id: str) -> bool:
    o = t.identity_overrides
    found = conn.execute(
        sa.select(o.c.kind).where(o.c.workspace_id == workspace_id, o.c.action == "detach").limit(1)
    ).first()
    return found is not None


def _key_text(table: pa.Table) -> pa.Array:
    """'kind<US>value' per row, as the graph's keys are written."""
    if table.num_rows == 0:
        return pa.array([], pa.string())
    out = pc.binary_join_element_wise(
        table.column("kind").cast(pa.string()), table.column("value").cast(pa.string()), SEP
    )
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _mapping_of(anchors: pa.Table) -> pa.Table:
    """(provisional id, customer id) of stored anchors, one customer per provisional id."""
    if anchors.num_rows == 0:
        none = pa.array([], pa.string())
        return pa.table({"p": none, "c": none})
    pairs = pa.table(
        {
            "p": anchors.column("provisional_id").cast(pa.string()),
            "c": anchors.column("customer_id").cast(pa.string()),
        }
    )
    found = pairs.group_by("p", use_threads=False).aggregate([("c", "min")])
    return pa.table({"p": found.column("p"), "c": found.column("c_min")})


def _old_mapping(conn: sa.Connection, workspace_id: str) -> pa.Table:
    """(provisional id, customer id) of the stored anchors, one customer per provisional id,
    as Arrow (no Python object per sender)."""
    found = query_arrow(
        conn,
        "SELECT provisional_id AS p, min(customer_id) AS c FROM identity_anchors "
        "WHERE workspace_id = :ws GROUP BY provisional_id",
        {"ws": workspace_id},
    )
    return pa.table(
        {
            "p": found.column("p").cast(pa.string())
            if found.num_rows
            else pa.array([], pa.string()),
            "c": found.column("c").cast(pa.string())
            if found.num_rows
            else pa.array([], pa.string()),
        }
    )


def _apply(
    conn: sa.Connection,
    workspace_id: str,
    graph: Graph,
    previous: pa.Table,
    *,
    windows: Mapping[str, int] | None = None,
    old: _Stored | None = None,
    received_from: datetime | None = None,
) -> ResolveReport:
    """Resolve the graph and store it: all of it (a full run, ``old`` None), or only the rows
    that differ from ``old`` (an incremental run), then re-point records and fold customers.

    The merge audit (Arrow and NumPy work on the graph, no database) is computed in a worker
    thread while this one writes and re-points (database work without the GIL); its rows are
    appended after.
    """
    now = _now()
    add_operator_links(conn, workspace_id, graph)
    detached = _detached(conn, workspace_id, graph)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-keys") as pool:
        # The nodes' integer keys (an MD5 each, DuckDB's work without the GIL: 0.4 s for the
        # 3.3M nodes at 1M customers) are computed while this thread resolves. (Writing a full
        # run's links here too, which do not depend on the resolution, measured 1 s slower at
        # 1M, alternated: the rules then share the cores with DuckDB's appends.)
        keyed = pool.submit(lambda: graph.node_keys)
        res = resolve(graph, detached, windows)
        keyed.result()
    node_customers, anchor_customers = customer_ids(workspace_id, graph, res)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-audit") as pool:
        audit = pool.submit(
            _merge_audit_rows, workspace_id, graph, res, anchor_customers, previous, now
        )
        repointed, moves, followed = _store(
            conn,
            workspace_id,
            graph,
            res,
            node_customers,
            anchor_customers,
            now,
            old,
            received_from,
        )
        audit_rows = audit.result()
    if audit_rows is not None:
        append(conn, t.identity_audit, audit_rows)
    return ResolveReport(
        identifiers=len(graph.keys),
        links=len(graph.link_a),
        customers=int(pc.count_distinct(node_customers).as_py()),
        merges=0 if audit_rows is None else audit_rows.num_rows,
        conflicts=len(res.conflicts),
        refused=len(graph.refused),
        repointed={**repointed, "customers_merged": len(moves.merged), **followed},
    )


def _store(
    conn: sa.Connection,
    workspace_id: str,
    graph: Graph,
    res: Resolution,
    node_customers: pa.Array,
    anchor_customers: pa.Array,
    now: datetime,
    old: _Stored | None,
    received_from: datetime | None,
) -> tuple[dict[str, int], CustomerMoves, dict[str, int]]:
    """Write the resolved graph (all of it, or what differs from ``old``), re-point records,
    fold customers and make every slice follow: (re-pointed, moves, followed) counts."""
    if old is None:
        write_graph(conn, workspace_id, graph, res, node_customers, anchor_customers, now)
        analyze(conn, (t.identities, t.identity_links, t.identity_anchors), REPOINTED)
        repointed = repoint(conn, workspace_id)
        moves = merge_customers(conn, workspace_id, now)
    else:
        rows = graph_rows(workspace_id, graph, res, node_customers, anchor_customers, now)
        write_changes(conn, t.identities, workspace_id, old.identities, rows.identities)
        write_changes(conn, t.identity_links, workspace_id, old.links, rows.links)
        anchors = write_changes(conn, t.identity_anchors, workspace_id, old.anchors, rows.anchors)
        write_changes(
            conn,
            t.identity_conflicts,
            workspace_id,
            old.conflicts,
            rows.conflicts,
            only_new_keys=True,
        )
        repointed = _repoint_incremental(conn, workspace_id, rows.anchors, anchors, received_from)
        moves = merge_customers(conn, workspace_id, now, _merged_pairs(rows.anchors))
    return repointed, moves, _follow(conn, workspace_id, moves)


def _merged_pairs(anchors: pa.Table) -> pa.Table:
    """The distinct (provisional id, customer id) pairs of the run's anchors."""
    picked = anchors.select(["provisional_id", "customer_id"])
    return picked.group_by(["provisional_id", "customer_id"], use_threads=False).aggregate([])


def _repoint_incremental(
    conn: sa.Connection,
    workspace_id: str,
    anchors: pa.Table,
    changes: Changes,
    received_from: datetime | None,
) -> dict[str, int]:
    """Re-point records after an incremental run, reading as little as it can.

    Records of a sender whose customer changed (a merge, a split) may be anywhere: all of them
    are re-pointed. The others already point at their sender's customer, except the batch's
    new records, which the pipeline gave the provisional id: with ``received_from``, only the
    events received since then and the orders and consents of merged senders are looked at.
    Without it, every record of the run's senders, as before.
    """
    if received_from is None:
        return repoint(conn, workspace_id, anchors)
    before = changes.deleted
    moved = anchors.slice(0, 0)
    if before.num_rows:
        was = pa.table(
            {
                "anchor_id": before.column("anchor_id").cast(pa.string()),
                "was": before.column("customer_id").cast(pa.string()),
            }
        )
        joined = anchors.join(was, "anchor_id", join_type="inner", use_threads=False)
        moved = joined.filter(
            pc.not_equal(joined.column("was"), joined.column("customer_id"))
        ).drop_columns(["was"])
    merged = anchors.filter(
        pc.not_equal(anchors.column("provisional_id"), anchors.column("customer_id"))
    )
    out = repoint(conn, workspace_id, moved) if moved.num_rows else {}
    recent = repoint(conn, workspace_id, merged, received_from=received_from)
    return {k: out.get(k, 0) + recent.get(k, 0) for k in recent}


def _follow(conn: sa.Connection, workspace_id: str, moves: CustomerMoves) -> dict[str, int]:
    """Every slice's per-customer rows follow (split restores first), then consents."""
    followed = follow_splits(conn, workspace_id, moves.revived)
    for name, count in follow_merges(conn, workspace_id, moves.merged).items():
        followed[name] = followed.get(name, 0) + count
    touched = {c for pair in (*moves.merged, *moves.revived) for c in pair}
    customers = sorted(touched)
    clear_merge_consents(conn, workspace_id, customers)
    followed["consents_restricted"] = apply_merge_consents(conn, workspace_id, customers)
    return followed


def _merge_audit_rows(
    workspace_id: str,
    graph: Graph,
    res: Resolution,
    anchor_customers: pa.Array,
    previous: pa.Table,
    now: datetime,
) -> pa.Table | None:
    """One audit row per customer whose set of merged provisional customers changed (None:
    no such customer). Reads no database, so it can run beside the run's writes.

    Set-based: the changed customers are found with Arrow group-bys and joins, their groups'
    identifiers, evidence and rules with NumPy sorts, and the JSON lists are joined in Arrow;
    Python only hashes one audit id per row.
    """
    anchors = graph.anchors
    pairs = pa.table(
        {
            "c": anchor_customers,
            "p": anchors.provisional_id,
            "i": pa.array(np.arange(len(anchors), dtype=np.int64)),
        }
    )
    # Set-based in one parallel DuckDB pass over Arrow (Arrow's group-bys and joins run on one
    # core; at 1M they took about 3 s of the audit thread beside the run's writes).
    distinct = arrow_query("SELECT c, p, max(i) AS i_max FROM pairs GROUP BY c, p", pairs=pairs)
    # Changed: a merged customer whose provisional ids differ (as a set) from those it had.
    changed = arrow_query(
        """
        WITH per AS (
            SELECT c, count(p) AS n, max(i_max) AS i_max_max FROM d GROUP BY c
            HAVING count(p) > 1
        ),
        before AS (SELECT c, count(p) AS before FROM prev GROUP BY c),
        common AS (
            SELECT d.c, count(d.p) AS common FROM d JOIN prev ON prev.c = d.c AND prev.p = d.p
            GROUP BY d.c
        )
        SELECT per.c, per.i_max_max FROM per
        LEFT JOIN before ON before.c = per.c
        LEFT JOIN common ON common.c = per.c
        WHERE NOT (coalesce(before.before, 0) = per.n AND coalesce(common.common, 0) = per.n)
        ORDER BY per.c
        """,
        d=distinct,
        prev=previous.select(["p", "c"]),
    )
    if changed.num_rows == 0:
        return None
    # A customer's group: that of its last anchor's node (one customer per group).
    last = np.asarray(changed.column("i_max_max").to_numpy(), dtype=np.int64)
    groups = res.group[anchors.node[last]]
    _, first_pos = np.unique(groups[::-1], return_index=True)
    keep = np.zeros(len(groups), dtype=bool)
    keep[len(groups) - 1 - first_pos] = True
    changed = changed.filter(pa.array(keep))
    groups = groups[keep]
    n = len(groups)
    slot = np.full(int(res.group.max()) + 1, -1, dtype=np.int64)
    slot[groups] = np.arange(n)
    customers = changed.column("c").combine_chunks()
    # The merged provisional ids of each changed customer, sorted.
    # (One parallel DuckDB join and sort: Arrow's single-threaded sort of the 1M full run's
    # pairs by two strings took 3.2 s.)
    ids = arrow_query(
        "SELECT d.c, d.p FROM d JOIN ch ON ch.c = d.c ORDER BY d.c, d.p",
        d=distinct.select(["c", "p"]),
        ch=changed.select(["c"]),
    )
    id_owner = _positions(customers, ids.column("c").combine_chunks())
    id_json = _json_lists(ids.column("p").combine_chunks(), id_owner, n)
    # Identifiers: the group's first 100 nodes in key order.
    node_slot = slot[res.group]
    nodes = np.flatnonzero(node_slot >= 0)
    nodes = nodes[np.argsort(node_slot[nodes], kind="stable")]
    nodes_owner, nodes = _first(node_slot[nodes], nodes, 100)
    keys = graph.key_array.take(pa.array(nodes))
    keys = pc.replace_substring(keys, SEP, ":", max_replacements=1)
    identifiers_json = _json_lists(keys, nodes_owner, n)
    # Evidence and rules: links inside the group (messages sorted, the first 100).
    ga, gb = res.group[graph.link_a], res.group[graph.link_b]
    inside = np.flatnonzero((ga == gb) & (slot[ga] >= 0))
    link_slot = slot[ga[inside]]
    messages = graph.link_message.take(pa.array(inside))
    evidence_owner, evidence = _sorted_sets(link_slot, messages, 100)
    evidence_json = _json_lists(evidence, evidence_owner, n)
    rules = graph.link_rule.take(pa.array(inside))
    rule_owner, rule_names = _sorted_sets(link_slot, rules, None)
    offsets = np.searchsorted(rule_owner, np.arange(n + 1)).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), rule_names), "+")
    joined = pc.fill_null(joined, "")
    rule = pc.if_else(pc.equal(joined, ""), "same_event", joined)
    if len(res.corroborated):
        typo = pa.array(np.isin(groups, res.corroborated))
        rule = pc.if_else(typo, pc.binary_join_element_wise(rule, TYPO_RULE, "+"), rule)
    stamp = now.isoformat()
    audit_ids = [short_hash(workspace_id, c, stamp, prefix="ida_") for c in customers.to_pylist()]
    return pa.table(
        {
            "workspace_id": pa.array([workspace_id] * n, pa.string()),
            "audit_id": pa.array(audit_ids, pa.string()),
            "action": pa.array(["merge"] * n, pa.string()),
            "customer_id": customers,
            "customers": id_json,
            "identifiers": identifiers_json,
            "evidence": evidence_json,
            "rule": rule,
            "recorded_at": pa.array(np.full(n, np.datetime64(now, "us"))),
        }
    ).select([c.name for c in t.identity_audit.columns])


def _positions(sorted_names: pa.Array, names: pa.Array) -> Ints:
    """The index of each of ``names`` in ``sorted_names`` (which holds them all, sorted)."""
    found = pc.index_in(names, value_set=sorted_names)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)


def _first(owner: Ints, values: Ints, most: int) -> tuple[Ints, Ints]:
    """(owner, value) pairs sorted by owner, at most ``most`` per owner (the first ones)."""
    if not len(owner):
        return owner, values
    start = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    run = np.repeat(start, np.diff(np.r_[start, len(owner)]))
    keep = np.arange(len(owner)) - run < most
    return owner[keep], values[keep]


def _sorted_sets(owner: Ints, text: pa.Array, most: int | None) -> tuple[Ints, pa.Array]:
    """Per owner, its distinct texts sorted (code-point order, as Python sorts), at most
    ``most``: (owner per text, texts), sorted by owner.

    One parallel DuckDB sort over Arrow (``arrow_query``): the evidence of a 1M full run is
    about 2M distinct message ids, which Arrow's single-threaded string rank took about 3 s
    to order, on the audit thread beside the run's writes.
    """
    pairs = arrow_query(
        "SELECT DISTINCT o, t FROM x WHERE t IS NOT NULL ORDER BY o, t",
        x=pa.table({"o": pa.array(owner, pa.int64()), "t": text}),
    )
    o = np.asarray(pairs.column("o").to_numpy(), dtype=np.int64)
    at = np.arange(len(o), dtype=np.int64)
    if most is not None:
        o, at = _first(o, at, most)
    return o, pairs.column("t").combine_chunks().take(pa.array(at))


_PLAIN_JSON = r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$"
"""Printable ASCII without '"' and '\\': a JSON string of it is the text in quotes."""


def _json_lists(values: pa.Array, owner: Ints, n: int) -> pa.Array:
    """Per owner 0..n-1, its values (sorted by owner) as a JSON array, as ``orjson`` writes it:
    plain strings quoted in Arrow, the rest escaped by ``orjson`` one by one."""
    import orjson

    plain = pc.fill_null(pc.match_substring_regex(values, _PLAIN_JSON), True)
    odd = np.flatnonzero(~np.asarray(plain.to_numpy(zero_copy_only=False), dtype=bool))
    if odd.size:
        text = np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
        text[odd] = [orjson.dumps(v).decode()[1:-1] for v in text[odd].tolist()]
        values = pa.array(text, pa.string())
    offsets = np.searchsorted(owner, np.arange(n + 1)).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), '","')
    quoted = pc.binary_join_element_wise('["', joined, '"]', "")
    empty = pa.array(offsets[1:] == offsets[:-1])
    return pc.if_else(empty, pa.scalar("[]", pa.string()), quoted)


def _audit_table(rows: list[dict[str, object]]) -> pa.Table:
    """Audit rows as Arrow (JSON documents as text), for one bulk append."""
    import orjson

    data: dict[str, pa.Array] = {}
    for col in t.identity_audit.columns:
        values = [r[col.name] for r in rows]
        if col.name == "recorded_at":
            data[col.name] = pa.array(values, pa.timestamp("us"))
        elif col.name in ("customers", "identifiers", "evidence"):
            data[col.name] = pa.array(
                [None if v is None else orjson.dumps(v).decode() for v in values], pa.string()
            )
        else:
            data[col.name] = pa.array(values, pa.string())
    return pa.table(data)


def parse_identifier(text: str) -> tuple[str, str]:
    """'kind:value' -> the node's (kind, normalised value); the kind's normaliser is applied."""
    kind, sep, value = text.partition(":")
    if not sep or not value:
        raise InvalidInput(
            f"{text!r} is not an identifier.",
            hint="Write it as kind:value, e.g. phone:+6281234567890.",
        )
    spec = get_kind(kind)
    if spec.namespace_by_source:
        source, _, rest = value.partition(":")
        normalised = spec.normalise(rest, source=source)
    else:
        normalised = spec.normalise(value)
    return spec.same_values_as or spec.name, normalised


def split(
    conn: sa.Connection,
    workspace_id: str,
    identifier: str,
    note: str | None = None,
    *,
    windows: Mapping[str, int] | None = None,
) -> str:
    """Detach an identifier from every merge, re-resolve, and record the split; return its key."""
    kind, value = parse_identifier(identifier)
    i = t.identities
    before = conn.execute(
        sa.select(i.c.customer_id).where(
            i.c.workspace_id == workspace_id, i.c.kind == kind, i.c.value == value
        )
    ).scalar()
    if before is None:
        raise InvalidInput(
            f"No identity {kind}:{value} in this workspace.",
            hint="Run 'siyu identity explain CUSTOMER' to list a customer's identifiers.",
        )
    now = _now()
    o = t.identity_overrides
    conn.execute(
        o.delete().where(o.c.workspace_id == workspace_id, o.c.kind == kind, o.c.value == value)
    )
    conn.execute(
        o.insert().values(
            workspace_id=workspace_id,
            kind=kind,
            value=value,
            action="detach",
            note=note,
            created_at=now,
        )
    )
    resolve_workspace(conn, workspace_id, windows=windows)
    after = conn.execute(
        sa.select(i.c.customer_id).where(
            i.c.workspace_id == workspace_id, i.c.kind == kind, i.c.value == value
        )
    ).scalar()
    audit: dict[str, object] = {
        "workspace_id": workspace_id,
        "audit_id": short_hash(workspace_id, kind, value, now.isoformat(), prefix="ida_"),
        "action": "split",
        "customer_id": str(before),
        "customers": [str(before), str(after)],
        "identifiers": [f"{kind}:{value}"],
        "evidence": None,
        "rule": "operator",
        "recorded_at": now,
    }
    append(conn, t.identity_audit, _audit_table([audit]))
    return f"{kind}:{value}"


def _component_identities_sql(conn: sa.Connection, name: str) -> str:
    """Every identity of the components that the keys staged as ``name`` reach.

    The components first (materialised: joining the whole identities table before filtering
    by component costs a scan and a hash of it), then their identifiers.
    """
    return (
        "WITH c AS MATERIALIZED (SELECT DISTINCT i2.component FROM identities i2 "
        f"JOIN {name} k ON k.node = i2.node WHERE i2.workspace_id = :ws) "
        f"SELECT {_select(conn, 'i')} FROM identities i "
        "JOIN c ON c.component = i.component WHERE i.workspace_id = :ws"
    )

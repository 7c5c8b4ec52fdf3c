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

from siyu.errors import InvalidInput
from siyu.identity import tables as t
from siyu.identity.audit import audit_table, merge_audit_rows
from siyu.identity.consents import apply_merge_consents, clear_merge_consents
from siyu.identity.diff import Changes, write_changes
from siyu.identity.extract import (
    SEP,
    Graph,
    Memo,
    build_graph,
    fetch_tuples,
    graph_keys,
    refresh_tuples,
    store_tuples,
)
from siyu.identity.follow import follow_merges, follow_splits
from siyu.identity.held import HeldGraphs
from siyu.identity.kind import get_kind
from siyu.identity.lookup import (
    Lookups,
    SeenChanges,
    Stored,
    mapping_of,
    new_sender_ids,
    old_mapping,
    raw_ids,
    reached_components,
    stored_rows,
)
from siyu.identity.resolve import Resolution, resolve
from siyu.identity.store import (
    REPOINTED,
    CustomerMoves,
    customer_ids,
    graph_rows,
    merge_customers,
    repoint,
    repoint_moved_events,
    short_hash,
    write_graph,
)
from siyu.identity.suggest import add_operator_links
from siyu.identity.versions import stamp_version
from siyu.store import schema
from siyu.store.bulk import analyze, append

OWN_KEYED = (schema.orders, schema.consents)
"""Re-pointed by their senders whatever the move (few rows; events are the large table)."""


@dataclass
class ResolveReport:
    """What one run resolved: a full run's whole graph, an incremental run's reached part."""

    identifiers: int = 0
    """Identity nodes in the run's graph."""
    links: int = 0
    """Links (evidence pairs) in the run's graph."""
    customers: int = 0
    """Groups of the run's graph (one customer id each). A weak identifier kept apart (a store
    tablet's browser id) is a group but no customer's record, so the count of customers a
    user sees is ``explain.outcome``'s, not this."""
    merges: int = 0
    """Merge audit rows written (customers whose set of merged provisional ids changed)."""
    conflicts: int = 0
    """Links refused by a merge rule, recorded for review."""
    refused: int = 0
    """Values refused as invalid or blocked."""
    repointed: dict[str, int] = field(default_factory=dict)
    """Rows that moved to another customer, per table, plus customers folded and consents
    restricted by merges."""


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
    previous = old_mapping(conn, workspace_id)
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
    held: HeldGraphs | None = None,
) -> ResolveReport:
    """Resolve a newly ingested batch, touching only the components it reaches.

    The pipeline hook: call after a chunk's events are stored, in the same transaction.
    ``received_from`` (when the caller knows it) is the earliest receipt time of the batch's
    events: the events are then read by their receipt time, which DuckDB prunes by zone maps,
    instead of a scan of every stored message id. ``held``: the process holds the stored graph
    in memory (``siyu serve``): the look-ups read it instead of the tables
    (:mod:`siyu.identity.held`).

    Each large table is read as few times as the lookups allow (DuckDB has no index lookups for
    a set of keys: every lookup is a scan of the table's columns): the identities of the
    reached components once, the anchors on them once, the history of their senders from
    ``identity_tuples`` (an integer join) together with the batch's tuples, which are then
    recorded there.
    """
    if not message_ids:
        return ResolveReport()
    region = _region(conn, workspace_id)
    everything = fetch_tuples(conn, workspace_id, message_ids, since=received_from)
    lookups = Lookups(conn, workspace_id) if held is None else held.lookups(conn, workspace_id)
    memo: Memo = {}
    # Quiet senders (:mod:`siyu.identity.quiet`) only move seen times: their tuples are left
    # out of the look-ups, and out of the graph unless a component it rebuilds holds them.
    hushed = lookups.quiet_rows(everything)
    batch = everything.filter(pa.array(~hushed))
    quiet = everything.filter(pa.array(hushed))
    # The batch's keys are normalised on another thread while this one looks up what the
    # batch's senders and raw ids reach (neither needs the keys).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-keys") as pool:
        keyed = pool.submit(graph_keys, batch, region, memo)
        # Generic userIds and alias previousIds are read against other senders' raw ids, so
        # senders with the same raw id are affected too, even when no identity node is shared
        # yet.
        raw_nodes = lookups.raw_nodes(sorted(raw_ids(batch)))
        # A sender seen for the first time can be the one an older alias named (its
        # previousId was then read as a user_id of the alias's source): a full run links them
        # now, so the alias's sender belongs to the graph. Found before the components are
        # read, so that one look-up reaches them all (a second round of look-ups cost 0.46 s
        # of a 2.6 s batch at 1M). (Raw ids of the senders' history need no look-up: each was
        # looked up when its batch was resolved, and a later sender with the same raw id is
        # found by its own batch's look-up.)
        senders = batch.column("sender").combine_chunks()
        named = lookups.aliases(new_sender_ids(batch, lookups.with_history(senders)))
        probed = sorted({*keyed.result(), *named})
    reached = reached_components(lookups, probed, raw_nodes)
    reached_senders = reached.anchors.column("sender").combine_chunks()
    inside = pc.is_in(quiet.column("sender"), value_set=reached_senders)
    batch = pa.concat_tables([batch, quiet.filter(inside)])
    quiet = quiet.filter(pc.invert(inside))
    tuples, had_history = lookups.sender_tuples(
        pc.unique(pa.concat_arrays([reached_senders, batch.column("sender").combine_chunks()])),
        batch,
    )
    lookups.stored(t.identity_tuples, store_tuples(conn, workspace_id, everything))
    graph = build_graph(workspace_id, tuples, region, memo)
    del tuples
    old = stored_rows(lookups, graph, probed, reached, had_history)
    return _apply(
        conn,
        workspace_id,
        graph,
        mapping_of(old.anchors),
        windows=windows,
        old=old,
        lookups=lookups,
        received_from=received_from,
        seen=lookups.seen_changes(quiet, region, memo),
    )


def _apply(
    conn: sa.Connection,
    workspace_id: str,
    graph: Graph,
    previous: pa.Table,
    *,
    windows: Mapping[str, int] | None = None,
    old: Stored | None = None,
    lookups: Lookups | None = None,
    received_from: datetime | None = None,
    seen: SeenChanges | None = None,
) -> ResolveReport:
    """Resolve the graph and store it: all of it (a full run, ``old`` None), or only the rows
    that differ from ``old`` (an incremental run; ``lookups`` read them), then re-point
    records and fold customers. The stored graph gets a new version (:mod:`held`).

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
            merge_audit_rows, workspace_id, graph, res, anchor_customers, previous, now
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
            lookups,
            received_from,
            seen,
        )
        audit_rows = audit.result()
    if audit_rows is not None:
        append(conn, t.identity_audit, audit_rows)
    if lookups is None:
        stamp_version(conn, workspace_id)
    else:
        lookups.finish()
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
    old: Stored | None,
    lookups: Lookups | None,
    received_from: datetime | None,
    seen: SeenChanges | None = None,
) -> tuple[dict[str, int], CustomerMoves, dict[str, int]]:
    """Write the resolved graph (all of it, or what differs from ``old``), re-point records,
    fold customers and make every slice follow: (re-pointed, moves, followed) counts.
    ``seen``: the quiet senders' anchors and the identities whose last seen time they move,
    written beside the graph's rows (none of which they share)."""
    if old is None:
        write_graph(conn, workspace_id, graph, res, node_customers, anchor_customers, now)
        analyze(conn, (t.identities, t.identity_links, t.identity_anchors), REPOINTED)
        repointed = repoint(conn, workspace_id)
        moves = merge_customers(conn, workspace_id, now, passive=_passive(graph))
    else:
        rows = graph_rows(workspace_id, graph, res, node_customers, anchor_customers, now)
        for table, before, after in (
            (t.identities, old.identities, rows.identities),
            (t.identity_links, old.links, rows.links),
        ):
            write_changes(conn, table, workspace_id, before, after, store=lookups)
        anchors = write_changes(
            conn, t.identity_anchors, workspace_id, old.anchors, rows.anchors, store=lookups
        )
        write_changes(
            conn,
            t.identity_conflicts,
            workspace_id,
            old.conflicts,
            rows.conflicts,
            only_new_keys=True,
            store=lookups,
        )
        run_anchors = rows.anchors
        if seen is not None:
            write_changes(conn, t.identities, workspace_id, seen.before, seen.after, store=lookups)
            run_anchors = pa.concat_tables(
                [
                    run_anchors,
                    seen.anchors.select(run_anchors.column_names).cast(run_anchors.schema),
                ]
            )
        repointed = _repoint_incremental(
            conn, workspace_id, run_anchors, anchors, old.anchors, received_from
        )
        moves = merge_customers(
            conn, workspace_id, now, _merged_pairs(run_anchors), _passive(graph)
        )
    return repointed, moves, _follow(conn, workspace_id, moves)


def _passive(graph: Graph) -> pa.Array:
    """The provisional ids of the graph's senders that never acted themselves."""
    anchors = graph.anchors
    return anchors.provisional_id.filter(pa.array(~anchors.acted))


def _merged_pairs(anchors: pa.Table) -> pa.Table:
    """The distinct (provisional id, customer id) pairs of the run's anchors."""
    picked = anchors.select(["provisional_id", "customer_id"])
    return picked.group_by(["provisional_id", "customer_id"], use_threads=False).aggregate([])


def _repoint_incremental(
    conn: sa.Connection,
    workspace_id: str,
    anchors: pa.Table,
    changes: Changes,
    stored: pa.Table,
    received_from: datetime | None,
) -> dict[str, int]:
    """Re-point records after an incremental run, reading as little as it can.

    Records of a sender whose customer changed (a merge, a split) may be anywhere: all of its
    orders and consents are re-pointed, and its events among those of its former customer
    (:func:`repoint_moved_events`; ``stored``, the run's stored anchors, tells a former
    customer all of whose senders moved together from one split). The other records already
    point at their sender's customer, except the batch's new records, which the pipeline gave
    the provisional id: with ``received_from``, only the events received since then and the
    orders and consents of merged senders are looked at. Without it, every record of the run's
    senders, as before.
    """
    if received_from is None:
        return repoint(conn, workspace_id, anchors)
    before = changes.deleted
    out: dict[str, int] = {}
    if before.num_rows:
        was = pa.table(
            {
                "anchor_id": before.column("anchor_id").cast(pa.string()),
                "was": before.column("customer_id").cast(pa.string()),
            }
        )
        joined = anchors.join(was, "anchor_id", join_type="inner", use_threads=False)
        moved = joined.filter(pc.not_equal(joined.column("was"), joined.column("customer_id")))
        if moved.num_rows:
            out = repoint(conn, workspace_id, moved.drop_columns(["was"]), tables=OWN_KEYED)
            out["events"] = repoint_moved_events(conn, workspace_id, moved, stored)
    merged = anchors.filter(
        pc.not_equal(anchors.column("provisional_id"), anchors.column("customer_id"))
    )
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
    append(conn, t.identity_audit, audit_table([audit]))
    return f"{kind}:{value}"

"""One-ID runs: full rebuild, incremental batches, and operator splits.

A full run rebuilds the graph of a workspace from its events. An incremental run reads the new
events plus every event of the senders whose components they touch, which is exactly the full
graph restricted to those components (every event touching a node links it to the event's sender),
so both paths give the same customers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from siyu.errors import InvalidInput
from siyu.identity import tables as t
from siyu.identity.consents import apply_merge_consents, clear_merge_consents
from siyu.identity.extract import SEP, Graph, build_graph, fetch_tuples, query_arrow
from siyu.identity.follow import follow_merges, follow_splits
from siyu.identity.kind import get_kind
from siyu.identity.resolve import Resolution, resolve
from siyu.identity.store import (
    CustomerMoves,
    customer_ids,
    merge_customers,
    repoint,
    short_hash,
    write_graph,
)
from siyu.identity.suggest import add_operator_links
from siyu.store import schema
from siyu.store.bulk import append, stage, unstage


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
    index = {k: i for i, k in enumerate(graph.keys)}
    return [index[f"{k}{SEP}{v}"] for k, v in rows if f"{k}{SEP}{v}" in index]


def resolve_workspace(
    conn: sa.Connection, workspace_id: str, *, windows: Mapping[str, int] | None = None
) -> ResolveReport:
    """Rebuild the identity graph of a workspace from all its events and apply it.

    ``windows`` is the ``identity_limit_windows`` setting (kind -> days); every path that
    resolves a workspace must pass the same one, or full and incremental runs could differ.
    """
    graph = build_graph(workspace_id, fetch_tuples(conn, workspace_id), _region(conn, workspace_id))
    previous = _old_mapping(conn, workspace_id)
    for table in (t.identities, t.identity_links, t.identity_anchors, t.identity_conflicts):
        conn.execute(table.delete().where(table.c.workspace_id == workspace_id))
    return _apply(conn, workspace_id, graph, previous, windows=windows)


def resolve_new_events(
    conn: sa.Connection,
    workspace_id: str,
    message_ids: Sequence[str],
    *,
    windows: Mapping[str, int] | None = None,
) -> ResolveReport:
    """Resolve a newly ingested batch, touching only the components it reaches.

    The pipeline hook: call after a chunk's events are stored, in the same transaction.
    """
    if not message_ids:
        return ResolveReport()
    region = _region(conn, workspace_id)
    tuples = fetch_tuples(conn, workspace_id, message_ids, ())
    first = build_graph(workspace_id, tuples, region)
    keys = _keys_table(workspace_id, first.keys)
    # Generic userIds and alias previousIds are read against other senders' raw ids, so senders
    # with the same raw id are affected too, even when no identity node is shared yet.
    raw = sorted(
        {
            str(v)
            for c in ("user_id", "previous_id")
            for v in tuples.column(c).drop_null().to_pylist()
            if v
        }
    )
    name = stage(conn, t.identities, keys)
    rname = stage(conn, t.identity_anchors, pa.table({"user_id": pa.array(raw, pa.string())}))
    try:
        senders = conn.execute(
            sa.text(
                "SELECT DISTINCT a.source_id, a.user_id, a.anonymous_id FROM identity_anchors a "
                "JOIN identities i ON i.workspace_id = a.workspace_id AND i.kind = a.kind "
                "AND i.value = a.value WHERE a.workspace_id = :ws AND i.component_id IN "
                f"(SELECT i2.component_id FROM identities i2 JOIN {name} k "
                "ON i2.kind = k.kind AND i2.value = k.value WHERE i2.workspace_id = :ws "
                "UNION SELECT i3.component_id FROM identities i3 JOIN identity_anchors a3 "
                "ON a3.workspace_id = i3.workspace_id AND a3.kind = i3.kind "
                f"AND a3.value = i3.value JOIN {rname} r ON r.user_id = a3.user_id "
                "WHERE i3.workspace_id = :ws "
                # Two equality joins, not one ON ... OR ...: an OR join is a nested loop.
                "UNION SELECT i4.component_id FROM identities i4 JOIN identity_anchors a4 "
                "ON a4.workspace_id = i4.workspace_id AND a4.kind = i4.kind "
                f"AND a4.value = i4.value JOIN {rname} r4 ON r4.user_id = a4.anonymous_id "
                "WHERE i4.workspace_id = :ws)"
            ),
            {"ws": workspace_id},
        ).all()
        graph = build_graph(
            workspace_id,
            fetch_tuples(conn, workspace_id, message_ids, [tuple(r) for r in senders]),
            region,
        )
    finally:
        unstage(conn, name)
        unstage(conn, rname)
    previous = _forget(conn, workspace_id, graph)
    return _apply(conn, workspace_id, graph, previous, incremental=True, windows=windows)


def _keys_table(workspace_id: str, keys: list[str]) -> pa.Table:
    return pa.table(
        {
            "workspace_id": pa.array([workspace_id] * len(keys), pa.string()),
            "kind": pa.array([k.split(SEP, 1)[0] for k in keys], pa.string()),
            "value": pa.array([k.split(SEP, 1)[1] for k in keys], pa.string()),
        }
    )


def _forget(conn: sa.Connection, workspace_id: str, graph: Graph) -> dict[str, str]:
    """Delete the stored rows the incremental graph replaces; return their old mapping."""
    name = stage(conn, t.identities, _keys_table(workspace_id, graph.keys))
    anchors = pa.table({"anchor_id": graph.anchors.anchor_id})
    aname = stage(conn, t.identity_anchors, anchors)
    ws = {"ws": workspace_id}
    try:
        found = conn.execute(
            sa.text(
                "SELECT provisional_id, customer_id FROM identity_anchors WHERE "
                f"workspace_id = :ws AND anchor_id IN (SELECT anchor_id FROM {aname})"
            ),
            ws,
        )
        previous = {str(p): str(c) for p, c in found}
        # The components the graph touches (two equality joins, not an OR of EXISTS), then
        # every identifier of them plus the graph's own, staged once for the deletes.
        gone = query_arrow(
            conn,
            "SELECT i.kind, i.value FROM identities i WHERE i.workspace_id = :ws "
            "AND i.component_id IN (SELECT i2.component_id FROM identities i2 "
            f"JOIN {name} k ON k.kind = i2.kind AND k.value = i2.value "
            "WHERE i2.workspace_id = :ws UNION SELECT i3.component_id FROM identities i3 "
            "JOIN identity_anchors a ON a.workspace_id = i3.workspace_id AND a.kind = i3.kind "
            f"AND a.value = i3.value JOIN {aname} s ON s.anchor_id = a.anchor_id "
            f"WHERE i3.workspace_id = :ws) UNION SELECT kind, value FROM {name}",
            ws,
        )
        conn.execute(
            sa.text(
                f"DELETE FROM identity_anchors WHERE workspace_id = :ws "
                f"AND anchor_id IN (SELECT anchor_id FROM {aname})"
            ),
            ws,
        )
        gname = stage(
            conn,
            t.identities,
            pa.table(
                {
                    "kind": gone.column("kind").cast(pa.string()),
                    "value": gone.column("value").cast(pa.string()),
                }
            ),
        )
        try:
            for table, kc, vc in (
                ("identity_links", "kind_a", "value_a"),
                ("identity_links", "kind_b", "value_b"),
                ("identity_conflicts", "kind", "value"),
                ("identities", "kind", "value"),
            ):
                conn.execute(
                    sa.text(
                        f"DELETE FROM {table} WHERE workspace_id = :ws AND EXISTS (SELECT 1 "
                        f"FROM {gname} g WHERE g.kind = {table}.{kc} AND g.value = {table}.{vc})"
                    ),
                    ws,
                )
        finally:
            unstage(conn, gname)
    finally:
        unstage(conn, name)
        unstage(conn, aname)
    return previous


def _old_mapping(conn: sa.Connection, workspace_id: str) -> dict[str, str]:
    a = t.identity_anchors
    rows = conn.execute(
        sa.select(a.c.provisional_id, a.c.customer_id).where(a.c.workspace_id == workspace_id)
    )
    return {str(p): str(c) for p, c in rows}


def _apply(
    conn: sa.Connection,
    workspace_id: str,
    graph: Graph,
    previous: dict[str, str],
    *,
    incremental: bool = False,
    windows: Mapping[str, int] | None = None,
) -> ResolveReport:
    now = _now()
    add_operator_links(conn, workspace_id, graph)
    res = resolve(graph, _detached(conn, workspace_id, graph), windows)
    node_customers, anchor_customers = customer_ids(workspace_id, graph, res)
    write_graph(conn, workspace_id, graph, res, node_customers, anchor_customers, now)
    only = [str(a) for a in graph.anchors.anchor_id.to_pylist()] if incremental else None
    repointed = repoint(conn, workspace_id, only)
    moves = merge_customers(conn, workspace_id, now)
    followed = _follow(conn, workspace_id, moves)
    merges = _audit_merges(conn, workspace_id, graph, res, anchor_customers, previous, now)
    return ResolveReport(
        identifiers=len(graph.keys),
        links=len(graph.link_a),
        customers=len(set(node_customers)),
        merges=merges,
        conflicts=len(res.conflicts),
        refused=len(graph.refused),
        repointed={**repointed, "customers_merged": len(moves.merged), **followed},
    )


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


def _audit_merges(
    conn: sa.Connection,
    workspace_id: str,
    graph: Graph,
    res: Resolution,
    anchor_customers: list[str],
    previous: dict[str, str],
    now: datetime,
) -> int:
    """One audit row per customer whose set of merged provisional customers changed."""
    # Only customers with two or more provisional ids can be a merge: found with pandas, so
    # Python builds sets for merged customers only, not one per sender.
    frame = pd.DataFrame(
        {
            "customer": pd.Series(anchor_customers, dtype=object),
            "p": pd.Series(
                graph.anchors.provisional_id.to_numpy(zero_copy_only=False), dtype=object
            ),
        }
    )
    distinct = frame.drop_duplicates()
    many = distinct.groupby("customer", sort=False)["p"].transform("size").to_numpy() > 1
    members: dict[str, set[str]] = {}
    for customer, p in zip(
        distinct["customer"][many].tolist(), distinct["p"][many].tolist(), strict=True
    ):
        members.setdefault(str(customer), set()).add(str(p))
    del distinct, many
    before: dict[str, set[str]] = {}
    for p, c in previous.items():
        before.setdefault(c, set()).add(p)
    changed = {c: ids for c, ids in members.items() if before.get(c) != ids}
    # A customer's group: that of its last anchor's node.
    last = frame[frame["customer"].isin(list(changed))].drop_duplicates("customer", keep="last")
    node_of = dict(zip(last["customer"].tolist(), last.index.tolist(), strict=True))
    del frame, last
    wanted = {int(res.group[graph.anchors.node[node_of[c]]]): c for c in changed}
    nodes_of: dict[int, list[int]] = {}
    picked = np.flatnonzero(np.isin(res.group, np.array(list(wanted), dtype=np.int64)))
    for i, g in zip(picked.tolist(), res.group[picked].tolist(), strict=True):
        nodes_of.setdefault(g, []).append(i)
    evidence_of: dict[int, set[str]] = {}
    rules_of: dict[int, set[str]] = {}
    ga, gb = res.group[graph.link_a], res.group[graph.link_b]
    for j in ((ga == gb) & np.isin(ga, list(wanted))).nonzero()[0].tolist():
        g = int(ga[j])
        evidence_of.setdefault(g, set()).add(graph.link_message[j])
        rules_of.setdefault(g, set()).add(graph.link_rule[j])
    rows = []
    for group, customer in sorted(wanted.items(), key=lambda x: x[1]):
        ids = changed[customer]
        nodes = nodes_of.get(group, [])
        evidence = sorted(evidence_of.get(group, set()))[:100]
        rules = sorted(rules_of.get(group, set()))
        rows.append(
            {
                "workspace_id": workspace_id,
                "audit_id": short_hash(workspace_id, customer, now.isoformat(), prefix="ida_"),
                "action": "merge",
                "customer_id": customer,
                "customers": sorted(ids),
                "identifiers": [graph.keys[i].replace(SEP, ":", 1) for i in nodes[:100]],
                "evidence": evidence,
                "rule": "+".join(rules) or "same_event",
                "recorded_at": now,
            }
        )
    if rows:
        append(conn, t.identity_audit, _audit_table(rows))
    return len(rows)


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

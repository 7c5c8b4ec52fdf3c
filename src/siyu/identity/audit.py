"""The merge audit of a One-ID run: one row per customer whose merged set changed.

Computed from the graph and the resolution alone (no database), so a run computes it on a
worker thread while it writes; :func:`audit_table` turns hand-made rows (a split's) into the
same Arrow shape.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from siyu.compute.arrow_sql import arrow_query
from siyu.identity import tables as t
from siyu.identity.corroborate import TYPO_RULE
from siyu.identity.extract import SEP, Graph, Ints
from siyu.identity.resolve import Resolution
from siyu.identity.store import short_hash


def merge_audit_rows(
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


def audit_table(rows: list[dict[str, object]]) -> pa.Table:
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

"""The stored graph rows an incremental One-ID run reads, and the look-ups that find them.

A batch re-resolves only the components it reaches. These functions find them in the stored
tables: the senders with a history, the senders an alias named, the components the batch's
identifiers and raw ids reach (their identities and the anchors on them), and the links and
conflicts those rows carry. DuckDB has no index look-up for a set of keys, so each look-up is
one join that scans the looked-up columns; they join on the integer keys of migration 0021
(``identity/keys.py``) and read each large table as few times as the run allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.identity import tables as t
from siyu.identity.diff import ROWID
from siyu.identity.extract import SEP, Graph, query_arrow
from siyu.identity.keys import keys_of
from siyu.store.bulk import arrow_type, stage, unstage


def with_history(conn: sa.Connection, workspace_id: str, senders: pa.Array) -> pa.Array:
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


def new_sender_ids(batch: pa.Table, had_history: pa.Array) -> list[str]:
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


def aliases(conn: sa.Connection, workspace_id: str, names: list[str]) -> list[str]:
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
    return [str(k) for k in key_text(found).to_pylist()]


def raw_ids(tuples: pa.Table) -> set[str]:
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
class Stored:
    """The stored rows an incremental graph replaces (DuckDB: each with its ``rowid``)."""

    identities: pa.Table
    links: pa.Table
    anchors: pa.Table
    conflicts: pa.Table


def _typed(rows: pa.Table, table: sa.Table) -> pa.Table:
    """Stored rows with the table's Arrow types (a PostgreSQL result without rows has none;
    DuckDB may hand strings over as views)."""
    types = {c.name: arrow_type(c) for c in table.columns}
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


def reached_components(
    conn: sa.Connection, workspace_id: str, keys: list[str], raw: list[str]
) -> Stored:
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
    return Stored(identities, none, anchors, none)


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
    return _exactly(found, key_text(identities), "")


def _exactly(rows: pa.Table, keys: pa.Array, *sides: str) -> pa.Table:
    """The rows whose (``kind{side}``, ``value{side}``) is one of ``keys`` ('kind<US>value')
    on any of ``sides``: rows found through a node key are checked against the exact node."""
    if rows.num_rows == 0:
        return rows
    keep: pa.Array | None = None
    for side in sides:
        text = key_text(
            pa.table({"kind": rows.column(f"kind{side}"), "value": rows.column(f"value{side}")})
        )
        hit = pc.is_in(text, keys)
        keep = hit if keep is None else pc.or_(keep, hit)
    return rows.filter(keep)


def stored_rows(
    conn: sa.Connection,
    workspace_id: str,
    graph: Graph,
    probed: list[str],
    reached: Stored,
    had_history: pa.Array,
) -> Stored:
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
            key_text(identities),
            pa.array(probed, pa.string()),
        ]
    )
    probe = probe.filter(pc.invert(pc.is_in(key_text(probe), known)))
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
            seen = key_text(identities.select(["kind", "value"]))
            more = more.filter(pc.invert(pc.is_in(key_text(more), seen)))
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
    exact = _exactly(_typed(links, t.identity_links), key_text(gone), *(f"_{s}" for s in sides))
    return Stored(identities, exact, anchors, _typed(conflicts, t.identity_conflicts))


def _has_detached(conn: sa.Connection, workspace_id: str) -> bool:
    o = t.identity_overrides
    found = conn.execute(
        sa.select(o.c.kind).where(o.c.workspace_id == workspace_id, o.c.action == "detach").limit(1)
    ).first()
    return found is not None


def key_text(table: pa.Table) -> pa.Array:
    """'kind<US>value' per row, as the graph's keys are written."""
    if table.num_rows == 0:
        return pa.array([], pa.string())
    out = pc.binary_join_element_wise(
        table.column("kind").cast(pa.string()), table.column("value").cast(pa.string()), SEP
    )
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def mapping_of(anchors: pa.Table) -> pa.Table:
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


def old_mapping(conn: sa.Connection, workspace_id: str) -> pa.Table:
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

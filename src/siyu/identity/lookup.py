"""The stored graph rows an incremental One-ID run reads, and the look-ups that find them.

A batch re-resolves only the components it reaches. :class:`Lookups` finds them in the stored
tables: the senders with a history, the senders an alias named, the components the batch's
identifiers and raw ids reach (their identities and the anchors on them), and the links and
conflicts those rows carry. DuckDB has no index look-up for a set of keys, so each look-up is
one join that scans the looked-up columns; they join on the integer keys of migration 0021
(``identity/keys.py``) and read each large table as few times as the run allows. A serving
process answers the same look-ups from memory (:class:`siyu.identity.held.HeldLookups`);
:func:`reached_components` and :func:`stored_rows` decide what to look up, for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.identity import tables as t
from siyu.identity.diff import ROWID, delete_rows
from siyu.identity.extract import (
    SEP,
    STORED_TUPLE_COLUMNS,
    Graph,
    Memo,
    query_arrow,
    stored_tuples_sql,
)
from siyu.identity.extract import _tuples as tuple_columns
from siyu.identity.keys import keys_of
from siyu.identity.versions import stamp_version
from siyu.store.bulk import arrow_type, stage, unstage


@dataclass
class SeenChanges:
    """What a run's quiet senders (:mod:`siyu.identity.quiet`) write: the identity rows whose
    last seen time they move (``before``, as stored; ``after``), and their stored anchors."""

    before: pa.Table
    after: pa.Table
    anchors: pa.Table


class Lookups:
    """An incremental run's look-ups and row deletes in the database, for one transaction."""

    def __init__(self, conn: sa.Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id
        self._ws = {"ws": workspace_id}

    def quiet_rows(self, batch: pa.Table) -> npt.NDArray[np.bool_]:
        """Per batch tuple, whether its sender is quiet: none here (only a held graph has the
        senders' stored tuples at hand)."""
        return np.zeros(batch.num_rows, dtype=bool)

    def seen_changes(self, tuples: pa.Table, region: str | None, memo: Memo) -> SeenChanges | None:
        """The seen times the quiet tuples move (none here: no tuple is quiet)."""
        return None

    def _staged_query(self, like: sa.Table, data: pa.Table, sql: str) -> pa.Table:
        """Run ``sql`` with ``data`` staged; ``{s}`` in it names the staged relation."""
        name = stage(self.conn, like, data)
        try:
            return query_arrow(self.conn, sql.format(s=name), self._ws)
        finally:
            unstage(self.conn, name)

    def with_history(self, senders: pa.Array) -> pa.Array:
        """Those of ``senders`` (hashes) with a stored tuple (a scan of one integer column)."""
        found = self._staged_query(
            t.identity_tuples,
            pa.table({"sender": pc.unique(senders)}),
            "SELECT DISTINCT x.sender FROM identity_tuples x WHERE x.workspace_id = :ws "
            "AND x.sender IN (SELECT sender FROM {s})",
        )
        return found.column("sender").combine_chunks().cast(pa.int64())

    def aliases(self, names: list[str]) -> list[str]:
        """The nodes ('kind<US>value') of the senders whose stored aliases name one of
        ``names`` as their previousId (a scan of the tuples' previousIds, mostly empty; the
        anchors are joined on the sender hash, an integer, not on their ids)."""
        if not names:
            return []
        found = self._staged_query(
            t.identity_anchors,
            pa.table({"user_id": pa.array(names, pa.string())}),
            "SELECT DISTINCT a.kind, a.value FROM identity_anchors a JOIN (SELECT DISTINCT "
            "x.sender FROM identity_tuples x WHERE x.workspace_id = :ws "
            "AND x.previous_id IN (SELECT user_id FROM {s})) s ON s.sender = a.sender "
            "WHERE a.workspace_id = :ws AND a.kind IS NOT NULL",
        )
        return sorted({str(k) for k in key_text(found).to_pylist()})

    def raw_nodes(self, raw: list[str]) -> pa.Array:
        """The nodes of the senders whose userId or anonymousId is one of ``raw``."""
        if not raw:
            return pa.array([], pa.int64())
        # Two equality joins, not one ON ... OR ...: an OR join is a nested loop.
        found = self._staged_query(
            t.identity_anchors,
            pa.table({"user_id": pa.array(raw, pa.string())}),
            " UNION ".join(
                "SELECT a.node FROM identity_anchors a JOIN {s} r "
                f"ON r.user_id = a.{column} WHERE a.workspace_id = :ws AND a.node IS NOT NULL"
                for column in ("user_id", "anonymous_id")
            ),
        )
        return found.column("node").combine_chunks().cast(pa.int64())

    def component_identities(self, nodes: pa.Array) -> pa.Table:
        """Every identity of the components that the node keys reach.

        The components first (materialised: joining the whole identities table before
        filtering by component costs a scan and a hash of it), then their identifiers.
        """
        found = self._staged_query(
            t.identities,
            pa.table({"node": nodes}),
            "WITH c AS MATERIALIZED (SELECT DISTINCT i2.component FROM identities i2 "
            "JOIN {s} k ON k.node = i2.node WHERE i2.workspace_id = :ws) "
            f"SELECT {self._select('i')} FROM identities i "
            "JOIN c ON c.component = i.component WHERE i.workspace_id = :ws",
        )
        return typed(found, t.identities)

    def anchors_on(self, nodes: pa.Array) -> pa.Table:
        """The stored anchors whose node key is one of ``nodes``."""
        return self._anchors_by("node", nodes)

    def anchors_of(self, senders: pa.Array) -> pa.Table:
        """The stored anchors of the senders (hashes)."""
        return self._anchors_by("sender", senders)

    def _anchors_by(self, column: str, keys: pa.Array) -> pa.Table:
        found = self._staged_query(
            t.identity_anchors,
            pa.table({column: pc.unique(keys)}),  # a repeated key must not repeat a row
            f"SELECT {self._select('a')} FROM identity_anchors a JOIN {{s}} k "
            f"ON a.{column} = k.{column} WHERE a.workspace_id = :ws",
        )
        return typed(found, t.identity_anchors)

    def links_of(self, nodes: pa.Table, sides: tuple[str, ...]) -> pa.Table:
        """The stored links whose node key on one of ``sides`` is one of ``nodes``."""
        found = self._staged_query(
            t.identities,
            nodes.select(["node"]),
            " UNION ".join(
                f"SELECT {self._select('l')} FROM identity_links l JOIN {{s}} g "
                f"ON g.node = l.node_{side} WHERE l.workspace_id = :ws"
                for side in sides
            ),
        )
        return typed(found, t.identity_links)

    def conflicts_of(self, nodes: pa.Table) -> pa.Table:
        """The stored conflicts about one of the (kind, value) of ``nodes``."""
        found = self._staged_query(
            t.identities,
            nodes,
            f"SELECT {self._select('x')} FROM identity_conflicts x "
            "WHERE x.workspace_id = :ws AND EXISTS (SELECT 1 FROM {s} g "
            "WHERE g.kind = x.kind AND g.value = x.value)",
        )
        return typed(found, t.identity_conflicts)

    def sender_tuples(self, senders: pa.Array, batch: pa.Table) -> tuple[pa.Table, pa.Array]:
        """Every stored tuple of the given senders (their hashes) with the ``batch``'s (not
        yet stored): an incremental run's history. Also returns the senders that have a
        stored tuple."""
        conn = self.conn
        name = stage(conn, t.identity_tuples, pa.table({"sender": senders.cast(pa.int64())}))
        bname = stage(conn, t.identity_tuples, batch.select(STORED_TUPLE_COLUMNS))
        try:
            found = query_arrow(conn, stored_tuples_sql(name, bname), self._ws)
        finally:
            unstage(conn, name)
            unstage(conn, bname)
        return with_history_of(found)

    def delete(self, table: sa.Table, rows: pa.Table) -> None:
        """Delete stored rows read by these look-ups (by ``rowid`` on DuckDB)."""
        delete_rows(self.conn, table, self.workspace_id, rows)

    def stored(self, table: sa.Table, rows: pa.Table) -> None:
        """Rows were appended to ``table`` (the database holds them already)."""

    def finish(self) -> None:
        """The run wrote the graph: give it a new version."""
        stamp_version(self.conn, self.workspace_id)

    def _select(self, alias: str) -> str:
        """A stored row's columns, with its rowid on DuckDB (rows are then deleted by rowid)."""
        rowid = f"{alias}.rowid AS {ROWID}, " if self.conn.dialect.name == "duckdb" else ""
        return f"{rowid}{alias}.*"


def with_history_of(found: pa.Table) -> tuple[pa.Table, pa.Array]:
    """Aggregated tuples (:func:`stored_tuples_sql`'s result) and the senders among them
    with a stored row."""
    if found.num_rows:
        stored = pc.greater(found.column("stored").cast(pa.int64()), 0)
        history = pc.unique(found.column("sender").filter(stored).combine_chunks())
    else:
        history = pa.array([], pa.int64())
    return tuple_columns(found), history.cast(pa.int64())


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
    """The stored rows an incremental graph replaces (each with what deletes it: its DuckDB
    ``rowid``, or its position in the held graph)."""

    identities: pa.Table
    links: pa.Table
    anchors: pa.Table
    conflicts: pa.Table


def typed(rows: pa.Table, table: sa.Table) -> pa.Table:
    """Stored rows with the table's Arrow types (a PostgreSQL result without rows has none;
    DuckDB may hand strings over as views)."""
    types = {c.name: arrow_type(c) for c in table.columns}
    return pa.table(
        {
            name: rows.column(name).cast(types.get(name, pa.int64()))
            if rows.column(name).type != types.get(name, pa.int64())
            else rows.column(name)
            for name in rows.column_names
        }
    )


def reached_components(lookups: Lookups, keys: list[str], named: pa.Array) -> Stored:
    """The stored components a batch reaches (through its identifiers, or the ``named`` nodes
    of senders whose raw id it names, :meth:`Lookups.raw_nodes`): their identities and the
    anchors on them, each read once."""
    probe = keys_of(pa.array(keys, pa.string()))
    if len(named):
        probe = pa.concat_arrays([probe, named])
    identities = lookups.component_identities(probe)
    nodes = identities.column("node").combine_chunks()
    anchors = _exactly(lookups.anchors_on(nodes), key_text(identities), "")
    none = identities.slice(0, 0)
    return Stored(identities, none, anchors, none)


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
    lookups: Lookups,
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
    anchors = reached.anchors
    # Senders of the graph with a history whose anchor was not read (not on a reached node).
    missing = pc.filter(had_history, pc.invert(pc.is_in(had_history, anchors.column("sender"))))
    if len(missing):
        anchors = pa.concat_tables([anchors, lookups.anchors_of(missing)])
    ids = graph.anchors.anchor_id
    anchors = anchors.filter(pc.is_in(anchors.column("anchor_id").cast(pa.string()), ids))
    identities = reached.identities
    own = _nodes_of(graph)
    probe = pa.concat_tables(
        [own, _node_columns(anchors.filter(pc.is_valid(anchors.column("kind"))))]
    )
    known = pa.concat_arrays([key_text(identities), pa.array(probed, pa.string())])
    probe = probe.filter(pc.invert(pc.is_in(key_text(probe), known)))
    if probe.num_rows:
        more = lookups.component_identities(probe.column("node").combine_chunks())
        if more.num_rows:
            seen = key_text(identities.select(["kind", "value"]))
            more = more.filter(pc.invert(pc.is_in(key_text(more), seen)))
            identities = pa.concat_tables([identities, more])
    gone = pa.concat_tables([own, _node_columns(identities)])
    # A stored link joins two identifiers of one component unless an operator detached one of
    # them (components ignore a detached identifier's links): without detached identifiers,
    # the links of the gone identifiers are those whose first side is one.
    sides = ("a", "b") if has_detached(lookups.conn, lookups.workspace_id) else ("a",)
    links = lookups.links_of(gone, sides)
    conflicts = lookups.conflicts_of(gone)
    exact = _exactly(links, key_text(gone), *(f"_{s}" for s in sides))
    return Stored(identities, exact, anchors, conflicts)


def has_detached(conn: sa.Connection, workspace_id: str) -> bool:
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

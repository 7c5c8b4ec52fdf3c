"""The stored identity graph held in memory by a serving process, for incremental runs.

Why: an incremental run looks up the stored rows its batch reaches in tables of millions of
rows (identities, links, anchors, identifier tuples). DuckDB has no index look-up for a set of
keys, so each look-up is a join that scans the table: 0.7 s of a 1.8 s batch of 10,000 events
at 1M customers, measured; an in-memory DuckDB copy of the tables only halved that. ``siyu
serve`` resolves batch after batch, so it holds each workspace's graph tables as Arrow with
sorted integer indexes (the node, component and sender keys of migration 0021; the raw ids by
their key of :mod:`siyu.identity.keys`), which answer the same look-ups in milliseconds.

The copy must be exactly what the database holds, or a run would write from a wrong past:

- **Versions.** Every run that writes the graph stamps a new random version into
  ``identity_graph_versions`` in its own transaction (:func:`stamp_version`). A held copy
  remembers the version it matches; a run compares it first and reloads the copy when another
  process, a full rebuild or a split changed the graph since, and when this process's own
  transaction rolled back after the copy was changed (the database then still holds the
  older version).
- **Writes.** An incremental run deletes the stored rows that changed (on DuckDB by their
  integer key: a scan of one column, as cheap as by ``rowid``, which a copy cannot know, and
  re-appends any other row that shared the key) and appends the new ones; the copy applies the
  same changes.

Memory: 2.7 GB at 1M customers (3.3M identities, 2.8M links, 2.8M anchors, 4.7M tuples as
Arrow, each table's one workspace id kept once; 16 bytes a row per index and its directory);
loading it takes seconds (``benchmarks/identity.py`` prints both). Processes that resolve once
(the CLI) read the tables instead.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.compute.arrow_sql import arrow_query
from siyu.identity import quiet
from siyu.identity import tables as t
from siyu.identity.diff import POS, ROWID, delete_rows
from siyu.identity.extract import (
    STORED_TUPLE_COLUMNS,
    TUPLE_COLUMNS,
    TUPLE_KEY,
    Memo,
    query_arrow,
    stored_tuples_sql,
)
from siyu.identity.lookup import (
    Lookups,
    SeenChanges,
    has_detached,
    key_text,
    typed,
    with_history_of,
)
from siyu.identity.versions import current_version, stamp_version
from siyu.store.bulk import append, stage, unstage

Ints = npt.NDArray[np.int64]

NONE = np.iinfo(np.int64).min
"""The index key of a null (never probed: probes are keys of values)."""

INDEXES: dict[str, tuple[tuple[str, bool], ...]] = {
    "identities": (("node", False), ("component", False)),
    "identity_links": (("node_a", False), ("node_b", False)),
    "identity_anchors": (
        ("node", False),
        ("sender", False),
        ("user_id", True),
        ("anonymous_id", True),
    ),
    "identity_tuples": (("sender", False), ("previous_id", True)),
}
"""Per held table, its indexed columns (True: a text column, indexed by its key)."""

WORKSPACE = "workspace_id"

DELETE_KEYS: dict[str, tuple[str, ...]] = {
    "identities": ("node",),
    "identity_links": ("node_a", "node_b"),
    "identity_anchors": ("sender",),
}
"""Per held table, the integer columns its changed rows are deleted by on DuckDB."""


def _ranges(lo: Ints, hi: Ints) -> Ints:
    """Every index in the half-open ranges [lo, hi), concatenated."""
    lengths = hi - lo
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    out: Ints = np.arange(total, dtype=np.int64) + np.repeat(lo - starts, lengths)
    return out


def _keys(column: pa.ChunkedArray | pa.Array, text: bool) -> Ints:
    """The index keys of a column (nulls NONE). A text column's keys are DuckDB's hash of the
    text: they only live in this process, so they need not be stable (as stored keys must be,
    :mod:`siyu.identity.keys`), and it costs a tenth of an MD5."""
    if text:
        found = arrow_query(
            "SELECT CASE WHEN k IS NOT NULL THEN (hash(k) >> 1)::BIGINT END AS key FROM t",
            t=pa.table({"k": column}),
        )
        values: pa.ChunkedArray | pa.Array = found.column("key")
    else:
        values = column
    filled = pc.fill_null(pc.cast(values, pa.int64()), NONE)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int64)


_SIGN = np.uint64(1 << 63)


def _unsigned(keys: Ints) -> npt.NDArray[np.uint64]:
    """Keys as unsigned integers in the same order (the sign bit flipped)."""
    out: npt.NDArray[np.uint64] = keys.view(np.uint64) ^ _SIGN
    return out


class KeyIndex:
    """One column's rows sorted by key, with a directory of the sorted keys by their leading
    bits.

    Why: the keys are hashes, spread evenly, so the directory puts about two rows in each of
    its slots and finding a probe's rows is two array reads and a compare, all vectorised: a
    binary search per probe over millions of keys (``searchsorted``) cost 0.16 s of look-ups
    per 10,000-event batch at 1M customers. The directory costs 4 bytes per two rows. Any
    spread stays correct (a crowded slot is only compared longer; past a bound, the binary
    search is used instead).
    """

    def __init__(self, keys: Ints) -> None:
        order = np.argsort(keys).astype(np.int64)
        self.keys: Ints = keys[order]
        self.order: Ints = order
        unsigned = _unsigned(self.keys)
        self._low = unsigned[0] if len(unsigned) else np.uint64(0)
        span = int(unsigned[-1] - self._low) if len(unsigned) else 0
        bits = max(1, len(keys).bit_length() - 1)
        self._shift = np.uint64(max(0, span.bit_length() - bits))
        slots = (span >> int(self._shift)) + 1
        counts = np.bincount(((unsigned - self._low) >> self._shift).astype(np.int64), None, slots)
        self._start = np.zeros(slots + 1, dtype=np.int32 if len(keys) < 2**31 else np.int64)
        np.cumsum(counts, out=self._start[1:])

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.order.nbytes + self._start.nbytes)

    def positions(self, probes: Ints) -> Ints:
        """Row positions of the keys equal to one of ``probes`` (distinct), in no order."""
        unsigned = _unsigned(probes)
        inside = (unsigned >= self._low) & (len(self.keys) > 0)
        inside &= ((unsigned - self._low) >> self._shift) < len(self._start) - 1
        probes = probes[inside]
        slot = ((unsigned[inside] - self._low) >> self._shift).astype(np.int64)
        lo = self._start[slot].astype(np.int64)
        hi = self._start[slot + 1].astype(np.int64)
        if int((hi - lo).sum()) > 8 * len(probes) + 4096:
            lo = np.searchsorted(self.keys, probes, "left")
            hi = np.searchsorted(self.keys, probes, "right")
            return self.order[_ranges(lo, hi)]
        candidates = _ranges(lo, hi)
        owner = np.repeat(np.arange(len(probes), dtype=np.int64), hi - lo)
        found: Ints = self.order[candidates[self.keys[candidates] == probes[owner]]]
        return found


class HeldTable:
    """One stored table's rows of a workspace as Arrow, with sorted indexes.

    Rows keep their position until the table is compacted (between runs): a look-up returns
    positions, a run deletes by position and appends at the end. The loaded rows (the base)
    stay one contiguous Arrow table, as a take from chunks would first copy them together;
    appended rows form a second table (the tail), found by a scan of their keys, until it
    grows to a fifth of the base: the table is then rebuilt without its deleted rows and
    re-indexed (about a second at 1M customers).
    """

    def __init__(
        self,
        name: str,
        rows: pa.Table,
        *,
        compact_at: int = 50_000,
        workspace_id: str | None = None,
    ) -> None:
        self.name = name
        self._compact_at = compact_at
        self._workspace = workspace_id
        self._workspace_at = -1
        if workspace_id is not None and WORKSPACE in rows.column_names:
            # One workspace's rows: the column is one value, kept once instead of once a row
            # (0.2 GB of the copy at 1M customers, measured) and put back in the rows handed out.
            self._workspace_at = rows.column_names.index(WORKSPACE)
        self._reset(rows)

    def _own(self, rows: pa.Table) -> pa.Table:
        """Rows as held: without the workspace column when it is kept once."""
        if self._workspace_at >= 0 and WORKSPACE in rows.column_names:
            return rows.drop_columns([WORKSPACE])
        return rows

    def _handed_out(self, rows: pa.Table) -> pa.Table:
        """Held rows as stored: with the workspace column where the table has it."""
        if self._workspace_at < 0:
            return rows
        ws = pa.repeat(pa.scalar(self._workspace, pa.string()), rows.num_rows)
        return rows.add_column(self._workspace_at, WORKSPACE, ws)

    def _reset(self, rows: pa.Table) -> None:
        self._rows = self._own(rows).combine_chunks()
        self._tail = self._rows.slice(0, 0)
        self.alive = np.ones(self._rows.num_rows, dtype=bool)
        self._base = self._rows.num_rows
        self._indexes: dict[str, KeyIndex] = {}
        self._tail_keys: dict[str, Ints] = {}
        for column, text in INDEXES[self.name]:
            self._indexes[column] = KeyIndex(_keys(self._rows.column(column), text))
            self._tail_keys[column] = np.zeros(0, dtype=np.int64)

    @property
    def live(self) -> pa.Table:
        """The live rows (a copy: for checks, not for runs)."""
        rows = pa.concat_tables([self._rows, self._tail]).combine_chunks()
        return self._handed_out(rows.filter(pa.array(self.alive)))

    @property
    def nbytes(self) -> int:
        index = sum(i.nbytes for i in self._indexes.values())
        return int(self._rows.nbytes + self._tail.nbytes) + index + self.alive.nbytes

    def find(self, column: str, probes: Ints) -> Ints:
        """Positions of the live rows whose ``column`` key is one of ``probes``, ascending."""
        probes = np.unique(probes[probes != NONE])
        if len(probes) == 0:
            return np.zeros(0, dtype=np.int64)
        found = [self._indexes[column].positions(probes)]
        tail = self._tail_keys[column]
        if len(tail):
            # A hash look-up of the tail's keys among the probes (a sort of both grew with
            # the tail, which reaches a fifth of the base between compactions).
            hit = pc.is_in(pa.array(tail), value_set=pa.array(probes))
            found.append(np.flatnonzero(hit.to_numpy(zero_copy_only=False)) + self._base)
        positions = np.concatenate(found)
        # Distinct probes find each row once (a row has one key): a sort, not a unique.
        return np.sort(positions[self.alive[positions]])

    def find_text(self, column: str, values: pa.Array) -> Ints:
        """Positions of the live rows whose text ``column`` is exactly one of ``values``."""
        found = self.find(column, _keys(values, True))
        if len(found) == 0:
            return found
        exact = pc.is_in(self.column(column, found), value_set=values)
        kept: Ints = found[np.asarray(exact.to_numpy(zero_copy_only=False), dtype=bool)]
        return kept

    def where(self, column: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
        """The live rows whose integer ``column`` is one of ``values``, with positions."""
        return self.take(self.find(column, _keys(values, False)))

    def take(self, positions: Ints) -> pa.Table:
        """The rows at ``positions`` (ascending), each with its position (``POS``)."""
        split = int(np.searchsorted(positions, self._base))
        rows = self._rows.take(pa.array(positions[:split], pa.int64()))
        if split < len(positions):
            more = self._tail.take(pa.array(positions[split:] - self._base, pa.int64()))
            rows = pa.concat_tables([rows, more]).combine_chunks()
        return self._handed_out(rows).append_column(POS, pa.array(positions, pa.int64()))

    def column(self, name: str, positions: Ints) -> pa.Array:
        """One column's values at ``positions`` (ascending)."""
        split = int(np.searchsorted(positions, self._base))
        parts = [self._rows.column(name).take(pa.array(positions[:split], pa.int64()))]
        if split < len(positions):
            tail = self._tail.column(name)
            parts.append(tail.take(pa.array(positions[split:] - self._base, pa.int64())))
        out = pa.chunked_array([c for p in parts for c in p.chunks], type=parts[0].type)
        return out.combine_chunks()

    def delete(self, positions: Ints) -> None:
        self.alive[positions] = False

    def append(self, rows: pa.Table) -> None:
        """Hold rows just appended to the stored table."""
        if rows.num_rows == 0:
            return
        schema = self._rows.schema
        data = pa.table(
            {f.name: pc.cast(rows.column(f.name), f.type) for f in schema}, schema=schema
        )  # the workspace column, kept once, is not in the schema
        self._tail = pa.concat_tables([self._tail, data]).combine_chunks()
        self.alive = np.concatenate([self.alive, np.ones(data.num_rows, dtype=bool)])
        for column, text in INDEXES[self.name]:
            keys = _keys(data.column(column), text)
            self._tail_keys[column] = np.concatenate([self._tail_keys[column], keys])
        if self._tail.num_rows > max(self._compact_at, self._base // 5):
            self._reset(self.live)


def grouped_tuples(rows: pa.Table, sources: pa.Table) -> pa.Table:
    """Stored tuple rows (``stored`` 1) and a batch's (0) aggregated per tuple by
    :func:`stored_tuples_sql`, in the in-memory DuckDB."""
    was_stored = pc.equal(rows.column("stored"), 1)
    return arrow_query(
        stored_tuples_sql(None, "batch", held="held"),
        held=rows.filter(was_stored).drop_columns(["stored"]),
        batch=rows.filter(pc.invert(was_stored)).drop_columns(["stored"]),
        sources=sources,
    )


def aggregate_tuples(rows: pa.Table, sources: pa.Table) -> pa.Table:
    """Stored tuple rows (``stored`` 1) and a batch's (0) aggregated per tuple, with their
    source's kind, ordered by message id: what :func:`stored_tuples_sql` gives.

    Most tuples have one row (a batch's new tuples, a sender's history stored once), and
    grouping every row by its seven strings cost 0.08-0.1 s of a 10,000-event batch at 1M
    customers. Rows are told apart by a 64-bit hash of those columns first: a row whose hash
    no other row has is a group of its own and passes as it is; only rows sharing a hash (the
    same tuple, or a collision the grouping then separates) go through the SQL aggregation.
    """
    columns = ", ".join(TUPLE_KEY)
    hashes = arrow_query(f"SELECT hash({columns}) AS h FROM r", r=rows.select(list(TUPLE_KEY)))
    codes = np.asarray(hashes.column("h").to_numpy(), dtype=np.uint64)
    _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    shared = counts[inverse] > 1
    alone = rows.filter(pa.array(~shared))
    kinds = sources.column("kind").take(
        pc.index_in(alone.column("source_id"), sources.column("source_id"))
    )
    parts = [alone.append_column("source_kind", kinds).select([*TUPLE_COLUMNS, "stored"])]
    if shared.any():
        grouped = grouped_tuples(rows.filter(pa.array(shared)), sources)
        parts.append(grouped.select(parts[0].column_names).cast(parts[0].schema))
    out = pa.concat_tables(parts)
    return out.take(pc.sort_indices(out, [("message_id", "ascending")]))


def _load(conn: sa.Connection, table: sa.Table, workspace_id: str) -> HeldTable:
    found = query_arrow(
        conn, f"SELECT * FROM {table.name} WHERE workspace_id = :ws", {"ws": workspace_id}
    )
    return HeldTable(table.name, typed(found, table), workspace_id=workspace_id)


@dataclass
class HeldGraph:
    """A workspace's stored graph tables held in memory, and the version they match."""

    workspace_id: str
    version: str | None
    identities: HeldTable
    links: HeldTable
    anchors: HeldTable
    tuples: HeldTable

    @classmethod
    def load(cls, conn: sa.Connection, workspace_id: str) -> HeldGraph:
        """Read the workspace's graph tables (and make sure a version is stored)."""
        version = current_version(conn, workspace_id) or stamp_version(conn, workspace_id)
        return cls(
            workspace_id,
            version,
            _load(conn, t.identities, workspace_id),
            _load(conn, t.identity_links, workspace_id),
            _load(conn, t.identity_anchors, workspace_id),
            _load(conn, t.identity_tuples, workspace_id),
        )

    @property
    def nbytes(self) -> int:
        return sum(h.nbytes for h in (self.identities, self.links, self.anchors, self.tuples))

    def table(self, name: str) -> HeldTable | None:
        return {
            "identities": self.identities,
            "identity_links": self.links,
            "identity_anchors": self.anchors,
            "identity_tuples": self.tuples,
        }.get(name)


class HeldGraphs:
    """The held graphs of one process, by workspace: ``siyu serve``'s background resolver
    (:func:`siyu.identity.hook.resolve_forever`) keeps one for its passes.

    Loading is under a lock; the runs that use a copy must not overlap (the background
    resolver runs them one at a time, under the database's write lock).
    """

    def __init__(self) -> None:
        self._graphs: dict[str, HeldGraph] = {}
        self._lock = threading.Lock()

    def lookups(self, conn: sa.Connection, workspace_id: str) -> HeldLookups:
        """Look-ups for a run in this transaction, from a held graph that matches the stored
        version (loaded or reloaded when it does not)."""
        with self._lock:
            held = self._graphs.get(workspace_id)
            if held is None or held.version != current_version(conn, workspace_id):
                held = self._graphs[workspace_id] = HeldGraph.load(conn, workspace_id)
        return HeldLookups(conn, workspace_id, held, self)

    def drop(self, workspace_id: str) -> None:
        with self._lock:
            self._graphs.pop(workspace_id, None)

    def get(self, workspace_id: str) -> HeldGraph | None:
        return self._graphs.get(workspace_id)


class HeldLookups(Lookups):
    """An incremental run's look-ups answered from a held graph; its deletes and appends are
    applied to both the database and the held copy."""

    def __init__(
        self, conn: sa.Connection, workspace_id: str, held: HeldGraph, owner: HeldGraphs
    ) -> None:
        super().__init__(conn, workspace_id)
        self.held = held
        self._owner = owner
        self._matched = held.version

    def with_history(self, senders: pa.Array) -> pa.Array:
        tuples = self.held.tuples
        found = tuples.find("sender", _keys(senders, False))
        return pc.unique(tuples.column("sender", found)).cast(pa.int64())

    def aliases(self, names: list[str]) -> list[str]:
        if not names:
            return []
        tuples, anchors = self.held.tuples, self.held.anchors
        named = tuples.find_text("previous_id", pa.array(names, pa.string()))
        senders = np.asarray(tuples.column("sender", named).to_numpy(), dtype=np.int64)
        rows = anchors.take(anchors.find("sender", senders))
        rows = rows.filter(pc.is_valid(rows.column("kind")))
        return sorted({str(k) for k in key_text(rows).to_pylist()})

    def raw_nodes(self, raw: list[str]) -> pa.Array:
        if not raw:
            return pa.array([], pa.int64())
        anchors, values = self.held.anchors, pa.array(raw, pa.string())
        found = np.union1d(
            anchors.find_text("user_id", values), anchors.find_text("anonymous_id", values)
        )
        nodes = anchors.column("node", found)
        return nodes.filter(pc.is_valid(nodes)).cast(pa.int64())

    def component_identities(self, nodes: pa.Array) -> pa.Table:
        identities = self.held.identities
        hit = identities.find("node", _keys(nodes, False))
        components = np.asarray(
            identities.column("component", hit).fill_null(NONE).to_numpy(), dtype=np.int64
        )
        return identities.take(identities.find("component", components))

    def anchors_on(self, nodes: pa.Array) -> pa.Table:
        return self.held.anchors.where("node", nodes)

    def anchors_of(self, senders: pa.Array) -> pa.Table:
        return self.held.anchors.where("sender", senders)

    def links_of(self, nodes: pa.Table, sides: tuple[str, ...]) -> pa.Table:
        links, probes = self.held.links, _keys(nodes.column("node"), False)
        found = np.unique(np.concatenate([links.find(f"node_{s}", probes) for s in sides]))
        return links.take(found)

    def sender_tuples(self, senders: pa.Array, batch: pa.Table) -> tuple[pa.Table, pa.Array]:
        stored = self.held.tuples.where("sender", senders).select(STORED_TUPLE_COLUMNS)
        found = query_arrow(
            self.conn,
            "SELECT source_id, kind FROM sources WHERE workspace_id = :ws",
            {"ws": self.workspace_id},
        )
        sources = pa.table(
            {c: pc.cast(found.column(c), pa.string()) for c in ("source_id", "kind")}
        )
        rows = pa.concat_tables(
            [
                stored.append_column("stored", pa.repeat(pa.scalar(1, pa.int32()), len(stored))),
                batch.select(STORED_TUPLE_COLUMNS)
                .cast(stored.schema)
                .append_column("stored", pa.repeat(pa.scalar(0, pa.int32()), batch.num_rows)),
            ]
        ).combine_chunks()
        return with_history_of(aggregate_tuples(rows, sources))

    def quiet_rows(self, batch: pa.Table) -> npt.NDArray[np.bool_]:
        if has_detached(self.conn, self.workspace_id):  # components then ignore some links
            return super().quiet_rows(batch)
        return quiet.quiet_rows(self.held, batch)

    def seen_changes(self, tuples: pa.Table, region: str | None, memo: Memo) -> SeenChanges | None:
        if tuples.num_rows == 0:
            return None
        return quiet.seen_changes(self.held, tuples, region, memo)

    def _changing(self) -> None:
        """The copy is about to change: until :meth:`finish` stamps the version it then
        matches, it matches none (a run that fails half-way leaves it to be reloaded)."""
        self.held.version = None

    def delete(self, table: sa.Table, rows: pa.Table) -> None:
        held = self.held.table(table.name)
        if held is not None:
            self._changing()
        if held is None or POS not in rows.column_names:
            delete_rows(self.conn, table, self.workspace_id, rows)
            return
        positions = np.asarray(rows.column(POS).to_numpy(), dtype=np.int64)
        keys = DELETE_KEYS[table.name]
        if self.conn.dialect.name != "duckdb" or any(rows.column(k).null_count for k in keys):
            delete_rows(self.conn, table, self.workspace_id, rows.drop_columns([POS]))
        else:
            self._delete_by_keys(table, held, rows, positions, keys)
        held.delete(positions)

    def _delete_by_keys(
        self,
        table: sa.Table,
        held: HeldTable,
        rows: pa.Table,
        positions: Ints,
        keys: Sequence[str],
    ) -> None:
        """Delete by integer keys (a scan of those columns), then store again the other held
        rows that had the same keys (a key collision, or links of one pair)."""
        picked = rows.select(list(keys)).group_by(list(keys), use_threads=False).aggregate([])
        name = stage(self.conn, table, picked)
        try:
            match = " AND ".join(f"s.{k} = {table.name}.{k}" for k in keys)
            self.conn.execute(
                sa.text(
                    f"DELETE FROM {table.name} WHERE workspace_id = :ws AND EXISTS "
                    f"(SELECT 1 FROM {name} s WHERE {match})"
                ),
                {"ws": self.workspace_id},
            )
        finally:
            unstage(self.conn, name)
        first = keys[0]
        sharing = held.find(first, _keys(rows.column(first), False))
        sharing = np.setdiff1d(sharing, positions)
        if len(sharing):
            others = held.take(sharing)
            wanted = picked.append_column("__hit", pa.array(np.ones(picked.num_rows, dtype=bool)))
            joined = others.join(wanted, list(keys), join_type="inner", use_threads=False)
            if joined.num_rows:
                append(self.conn, table, joined.drop_columns([POS, "__hit"]))

    def stored(self, table: sa.Table, rows: pa.Table) -> None:
        held = self.held.table(table.name)
        if held is not None:
            self._changing()
            held.append(rows.drop_columns([c for c in (POS, ROWID) if c in rows.column_names]))

    def finish(self) -> None:
        """The run wrote the graph: stamp a new version, which the held copy then matches
        (or drop the copy if another writer's version came first)."""
        version = (
            None
            if self._matched is None
            else stamp_version(self.conn, self.workspace_id, self._matched)
        )
        if version is None:
            self._owner.drop(self.workspace_id)
        else:
            self.held.version = version

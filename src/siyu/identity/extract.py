"""Identifiers and links from the events table, set-based.

The database groups events by the identifiers they carry (most events of a sender repeat the same
userId/anonymousId/traits), so Python only sees distinct identifier tuples, and normalises each
distinct raw value once (:func:`siyu.identity.normalise_many`). An event with two or more
identifiers links them: every identifier to the event's anchor (its userId, else anonymousId),
which is the node its provisional customer id was derived from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property, partial
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.collect.ecommerce import own_act_sql
from siyu.compute.arrow_sql import arrow_query
from siyu.identity.blocking import blocked_column, normalise_many
from siyu.identity.fastpath import fast_namespaced, fast_values
from siyu.identity.keys import keys_of
from siyu.identity.kind import IdentifierKind, get_kind
from siyu.identity.tables import identity_tuples
from siyu.store import schema
from siyu.store.arrow_read import postgres_arrow
from siyu.store.bulk import append, stage, unstage

Ints = npt.NDArray[np.int64]
SEP = "\x1f"

USER_ID_KIND_BY_SOURCE: dict[str, str] = {
    "shopify": "shopify_customer_id",
    "tiktok_shop": "tiktok_user_id",
    "whatsapp": "whatsapp",
    "instagram": "instagram",
    "email": "email",
    "line": "line_user_id",
    "discord": "discord_user_id",
}
"""The kind of a source's userId. Other store sources (amazon, woocommerce) get ``user_id``
namespaced by source: an Amazon buyer id is not a relay address, so not ``amazon_buyer``."""

GENERIC_SOURCES = frozenset({"web", "mobile", "sms", "import", "other"})
"""Sources whose userId is usually another system's id (a storefront sends the store's customer
id): their userId, like an alias ``previousId``, joins the node with the same raw userId when
exactly one exists, and is ``user_id`` namespaced by source otherwise."""


def _json_text(dialect: str, column: str, *path: str) -> str:
    if dialect == "duckdb":
        return f"json_extract_string({column}, '$.{'.'.join(path)}')"
    head = "".join(f"->'{p}'" for p in path[:-1])
    return f"({column}{head}->>'{path[-1]}')"


def sender_sql(dialect: str, alias: str) -> str:
    """The 64-bit hash of a row's sender ((source, userId), else anonymousId) in SQL: the key of
    ``identity_tuples``. Computed by the engine on both sides of every comparison (DuckDB's
    ``hash``, PostgreSQL's ``hashtextextended``), so it only has to be stable within one
    database; the same text as migration 0016 wrote."""
    a = alias
    text = (
        f"CASE WHEN {a}.user_id IS NOT NULL AND {a}.user_id <> '' THEN "
        f"'u|' || coalesce({a}.source_id, '') || '|' || {a}.user_id "
        f"ELSE 'a|' || coalesce({a}.anonymous_id, '') END"
    )
    if dialect == "duckdb":
        return f"CAST(hash({text}) >> 1 AS BIGINT)"
    return f"hashtextextended({text}, 0)"


def tuples_sql(dialect: str, ids: str | None, since: bool = False) -> str:
    """Distinct identifier tuples of a workspace's events (``ids``: only those messages;
    ``since``: only events received from ``:since``, which DuckDB's zone maps prune).

    Ordered by the tuple's first message id: a total order (no two tuples share an event), so
    runs are repeatable, and one string to sort instead of seven (at 1M customers sorting the
    4.7M tuples by their identifier columns cost DuckDB about 3 s of CPU). What the graph is
    built from does not depend on the order: per-node values are minima and maxima, a sender's
    node is the same on each of its rows, and links are ranked by time and message id."""
    country = (
        f"upper(coalesce({_json_text(dialect, 'e.traits', 'country')}, "
        f"{_json_text(dialect, 'e.traits', 'address', 'country')}, "
        f"right({_json_text(dialect, 'e.context', 'locale')}, 2)))"
    )
    where = "e.workspace_id = :ws" + (" AND e.received_at >= :since" if since else "")
    own = own_act_sql("e")
    picked = "" if ids is None else f"JOIN {ids} m ON m.message_id = e.message_id"
    return f"""
        SELECT e.source_id, s.kind AS source_kind, e.user_id, e.anonymous_id,
               CASE WHEN e.type = 'alias' THEN e.previous_id END AS previous_id,
               {_json_text(dialect, "e.traits", "email")} AS email,
               {_json_text(dialect, "e.traits", "phone")} AS phone,
               {country} AS country,
               min(e.timestamp) AS first_seen, max(e.timestamp) AS last_seen,
               min(e.message_id) AS message_id, {sender_sql(dialect, "e")} AS sender,
               min(e.timestamp) FILTER (WHERE {own}) AS own_first_seen,
               max(e.timestamp) FILTER (WHERE {own}) AS own_last_seen
        FROM events e {picked} LEFT JOIN sources s
          ON s.source_id = e.source_id AND s.workspace_id = e.workspace_id
        WHERE {where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        ORDER BY message_id
    """


def stored_tuples_sql(senders: str | None, batch: str, held: str | None = None) -> str:
    """The stored tuples (``identity_tuples``) of the staged ``senders`` and the staged
    ``batch`` tuples, aggregated as :func:`tuples_sql` aggregates the events (a tuple can have
    a row per run that saw it); ``stored`` tells tuples with a stored row.

    ``held``: the stored tuples are that relation's rows instead (a held graph's, already
    those of the senders; ``sources`` is then the workspace's sources only)."""
    columns = (
        "source_id, user_id, anonymous_id, previous_id, email, phone, country, first_seen, "
        "last_seen, message_id, sender, own_first_seen, own_last_seen"
    )
    stored = (
        f"{held} x"
        if held
        else "identity_tuples x WHERE x.workspace_id = :ws "
        f"AND x.sender IN (SELECT sender FROM {senders})"
    )
    workspace = "" if held else " AND s.workspace_id = :ws"
    return f"""
        SELECT t.source_id, s.kind AS source_kind, t.user_id, t.anonymous_id, t.previous_id,
               t.email, t.phone, t.country, min(t.first_seen) AS first_seen,
               max(t.last_seen) AS last_seen, min(t.message_id) AS message_id,
               min(t.sender) AS sender, min(t.own_first_seen) AS own_first_seen,
               max(t.own_last_seen) AS own_last_seen, max(t.stored) AS stored
        FROM (SELECT {columns}, 1 AS stored FROM {stored}
              UNION ALL SELECT {columns}, 0 AS stored FROM {batch}) t
        LEFT JOIN sources s ON s.source_id = t.source_id{workspace}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        ORDER BY message_id
    """


STORED_TUPLE_COLUMNS = [c.name for c in identity_tuples.columns if c.name != "workspace_id"]


def store_tuples(conn: sa.Connection, workspace_id: str, tuples: pa.Table) -> pa.Table:
    """Record tuples in ``identity_tuples`` (an incremental run's batch; a full run's all);
    return the rows stored."""
    data = tuples.select(STORED_TUPLE_COLUMNS)
    ws = pa.repeat(pa.scalar(workspace_id, pa.string()), data.num_rows)
    rows = data.add_column(0, "workspace_id", ws)
    append(conn, identity_tuples, rows)
    return rows


def refresh_tuples(conn: sa.Connection, workspace_id: str, tuples: pa.Table) -> None:
    """Make a workspace's ``identity_tuples`` the given tuples (a full run's read of all its
    events), writing only rows that differ.

    A full run used to delete every row and append them all again in its transaction (3.3M
    rows at 1M customers, the bulk of what DuckDB then had to commit). Rows equal to a fetched
    tuple (every column, nulls equal) stay; the others (tuples of events since deleted, and the
    per-batch rows of a tuple several batches saw, whose aggregate the fetched row replaces)
    are deleted; fetched tuples without an equal row are appended. The result reads the same
    as the rewrite: one row per tuple, as the events aggregate. A workspace with no stored
    tuple (its first full run) gets them appended, without comparing with nothing.
    """
    ws = {"ws": workspace_id}
    if not conn.execute(
        sa.text("SELECT 1 FROM identity_tuples WHERE workspace_id = :ws LIMIT 1"), ws
    ).first():
        store_tuples(conn, workspace_id, tuples)
        return
    data = tuples.select(STORED_TUPLE_COLUMNS)
    name = stage(conn, identity_tuples, data)
    same = " AND ".join(
        f"f.{c} IS NOT DISTINCT FROM x.{c}" for c in STORED_TUPLE_COLUMNS if c != "sender"
    )
    columns = ", ".join(STORED_TUPLE_COLUMNS)
    try:
        conn.execute(
            sa.text(
                "DELETE FROM identity_tuples x WHERE x.workspace_id = :ws AND NOT EXISTS "
                f"(SELECT 1 FROM {name} f WHERE f.sender = x.sender AND {same})"
            ),
            ws,
        )
        conn.execute(
            sa.text(
                f"INSERT INTO identity_tuples (workspace_id, {columns}) "
                f"SELECT :value, {', '.join('f.' + c for c in STORED_TUPLE_COLUMNS)} FROM {name} f "
                "WHERE NOT EXISTS (SELECT 1 FROM identity_tuples x WHERE x.workspace_id = :ws "
                f"AND x.sender = f.sender AND {same})"
            ),
            {**ws, "value": workspace_id},  # one parameter per use: PostgreSQL types each
        )
    finally:
        unstage(conn, name)
    stored = conn.execute(
        sa.text("SELECT count(*) FROM identity_tuples WHERE workspace_id = :ws"), ws
    ).scalar_one()
    if stored > tuples.num_rows:
        _drop_repeated_tuples(conn, workspace_id)


def _drop_repeated_tuples(conn: sa.Connection, workspace_id: str) -> None:
    """Delete exact copies of a stored tuple row, keeping the first.

    A batch resolved twice (inline, then by the background pass, which starts without a
    watermark) stores its tuples twice; the full rewrite used to collapse them, and a refresh
    by difference keeps every row equal to a fetched one. Only run when the workspace holds
    more rows than the full run fetched (a count, not this self-join, in the common case).
    """
    row_id = "rowid" if conn.dialect.name == "duckdb" else "ctid"
    same = " AND ".join(f"y.{c} IS NOT DISTINCT FROM x.{c}" for c in STORED_TUPLE_COLUMNS)
    conn.execute(
        sa.text(
            "DELETE FROM identity_tuples x WHERE x.workspace_id = :ws AND EXISTS "
            "(SELECT 1 FROM identity_tuples y WHERE y.workspace_id = :ws2 "
            f"AND {same} AND y.{row_id} < x.{row_id})"
        ),
        {"ws": workspace_id, "ws2": workspace_id},
    )


@dataclass
class Anchors:
    """One row per sender ((source, userId) or anonymousId), as columns.

    Arrow strings and NumPy ints/times: at 1M customers (~3M senders) a dict of Python strings
    per sender took ~2 GB, these columns a tenth of that.
    """

    anchor_id: pa.Array
    source_id: pa.Array
    user_id: pa.Array
    anonymous_id: pa.Array
    node: Ints
    """The sender's identity node (-1: none)."""
    provisional_id: pa.Array
    first_seen: npt.NDArray[np.datetime64]
    sender: pa.Array
    """The sender's hash, as ``identity_tuples`` keys it (:func:`sender_sql`)."""
    acted: npt.NDArray[np.bool_]
    """Whether any of the sender's events is the customer's own act (else siyu and the brand
    only stored events about her under it, such as message statuses): a merge takes seen
    times from the customer rows of senders that acted."""

    def __len__(self) -> int:
        return len(self.node)

    @classmethod
    def empty(cls) -> Anchors:
        none = pa.array([], pa.string())
        return cls(none, none, none, none, np.zeros(0, dtype=np.int64), none,
                   np.zeros(0, dtype="datetime64[us]"), pa.array([], pa.int64()),
                   np.zeros(0, dtype=bool))  # fmt: skip


class KeyList(Sequence[str]):
    """The graph's keys by index, each read from the Arrow array when asked for.

    A full run reads few keys by index (the contested components' links, groups without a
    sender); a Python string per node (3.3M at 1M customers) cost 2.8 s to make.
    """

    def __init__(self, array: pa.Array) -> None:
        self._array = array

    def __len__(self) -> int:
        return len(self._array)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [str(k) for k in self._array[i].to_pylist()]
        return str(self._array[i].as_py())

    def __iter__(self) -> Iterator[str]:
        return iter(self._array.to_pylist())


@dataclass
class Graph:
    """Identity nodes, links between them and event anchors, as parallel columns."""

    key_array: pa.Array
    """'kind<US>value' per node, sorted: index order is key order on every subset."""
    first_seen: npt.NDArray[np.datetime64]
    """Per node, microseconds (NumPy, not a Python datetime per node)."""
    last_seen: npt.NDArray[np.datetime64]
    source_id: pa.Array
    """Per node, the least source id it was seen on (null: none)."""
    account_source: pa.Array
    """Per node that is a source's account id (a userId), that source (null otherwise)."""
    link_a: Ints
    link_b: Ints
    link_message: pa.Array
    """Per link, the message id of its evidence (Arrow strings)."""
    link_rule: pa.Array
    link_seen: npt.NDArray[np.datetime64]
    """Per link, microseconds."""
    anchors: Anchors
    refused: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(kind, raw value, reason, message_id) of values that were invalid or blocked."""
    raw_pairs: tuple[pa.Array, Ints] = field(
        default_factory=lambda: (pa.array([], pa.string()), np.zeros(0, dtype=np.int64))
    )
    """(raw value as the events carry it, node it became) per occurrence, for evaluation."""

    @cached_property
    def raw_nodes(self) -> dict[str, set[int]]:
        """Raw value -> nodes it became (for evaluation against a truth). Built once per graph:
        ``evaluate`` looks up every truth value in it (rebuilt on each access, the 50K demo's
        evaluation had not finished after minutes)."""
        out: dict[str, set[int]] = {}
        raws, nodes = self.raw_pairs
        for raw, node in zip(raws.to_pylist(), nodes.tolist(), strict=True):
            out.setdefault(raw, set()).add(node)
        return out

    @cached_property
    def keys(self) -> KeyList:
        """The keys by index (Python strings, made only for the keys read)."""
        return KeyList(self.key_array)

    @cached_property
    def node_keys(self) -> pa.Array:
        """The integer key of each node (:mod:`siyu.identity.keys`), computed once per graph."""
        return keys_of(self.key_array)

    @cached_property
    def key_parts(self) -> tuple[pa.Array, pa.Array]:
        """(kind, value) per node as Arrow arrays, split once per graph."""
        if not self.keys:
            none = pa.array([], pa.string())
            return none, none
        parts = pc.split_pattern(self.key_array, SEP, max_splits=1)
        return pc.list_element(parts, 0), pc.list_element(parts, 1)

    @cached_property
    def kind_codes(self) -> tuple[Ints, list[str]]:
        """Kind code per node and the kind names (Arrow dictionary encoding, no per-node
        Python object)."""
        if not self.keys:
            return np.zeros(0, dtype=np.int64), []
        encoded = pc.dictionary_encode(self.key_parts[0])
        codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        return codes, [str(x) for x in encoded.dictionary.to_pylist()]

    def kind(self, i: int) -> str:
        return self.keys[i].split(SEP, 1)[0]

    def value(self, i: int) -> str:
        return self.keys[i].split(SEP, 1)[1]


def _node_kind(kind: str) -> str:
    """WhatsApp ids are phone numbers: one node for both (``same_values_as``)."""
    return get_kind(kind).same_values_as or kind


TUPLE_KEY = ("source_id", "user_id", "anonymous_id", "previous_id", "email", "phone", "country")
"""The columns that tell one identifier tuple from another (the source's kind follows its id)."""

TUPLE_COLUMNS = (
    "source_id",
    "source_kind",
    "user_id",
    "anonymous_id",
    "previous_id",
    "email",
    "phone",
    "country",
    "first_seen",
    "last_seen",
    "message_id",
    "sender",
    "own_first_seen",
    "own_last_seen",
)

TIME_COLUMNS = ("first_seen", "last_seen", "own_first_seen", "own_last_seen")


def query_arrow(conn: sa.Connection, sql: str, params: dict[str, Any]) -> pa.Table:
    """Run a query into an Arrow table: DuckDB hands Arrow over directly, PostgreSQL as CSV
    through ``COPY`` (:func:`siyu.store.arrow_read.postgres_arrow`)."""
    if conn.dialect.name == "duckdb":
        duck: Any = conn.connection.driver_connection
        named = sql
        for key in params:
            named = named.replace(f":{key}", f"${key}")
        table: pa.Table = duck.sql(named, params=params).to_arrow_table()
        return table
    if conn.dialect.name == "postgresql":
        return postgres_arrow(conn, sql, params)
    result = conn.execute(sa.text(sql), params)
    names = list(result.keys())
    rows = result.all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return pa.table({n: pa.array(list(c)) for n, c in zip(names, columns, strict=True)})


def fetch_tuples(
    conn: sa.Connection,
    workspace_id: str,
    message_ids: Sequence[str] | None = None,
    *,
    since: datetime | None = None,
) -> pa.Table:
    """The distinct identifier tuples as an Arrow table (one row per sender and traits variant).

    With ``message_ids``, only those events (received from ``since``, when given): an
    incremental run's batch.
    """
    dialect = conn.dialect.name
    if message_ids is None:
        return _tuples(query_arrow(conn, tuples_sql(dialect, None), {"ws": workspace_id}))
    ids = pa.table({"message_id": pa.array(sorted(set(message_ids)), pa.string())})
    ids_name = stage(conn, schema.events, ids)
    params: dict[str, Any] = {"ws": workspace_id}
    if since is not None:
        params["since"] = since
    try:
        sql = tuples_sql(dialect, ids_name, since is not None)
        return _tuples(query_arrow(conn, sql, params))
    finally:
        unstage(conn, ids_name)


def fetch_sender_tuples(
    conn: sa.Connection, workspace_id: str, senders: pa.Array, batch: pa.Table
) -> tuple[pa.Table, pa.Array]:
    """Every stored tuple of the given senders (their hashes) with the ``batch``'s (not yet
    stored): an incremental run's history. Also returns the senders that have a stored tuple.
    """
    name = stage(conn, identity_tuples, pa.table({"sender": senders.cast(pa.int64())}))
    bname = stage(conn, identity_tuples, batch.select(STORED_TUPLE_COLUMNS))
    try:
        found = query_arrow(conn, stored_tuples_sql(name, bname), {"ws": workspace_id})
    finally:
        unstage(conn, name)
        unstage(conn, bname)
    if found.num_rows:
        stored = pc.greater(found.column("stored").cast(pa.int64()), 0)
        history = pc.unique(found.column("sender").filter(stored).combine_chunks())
    else:
        history = pa.array([], pa.int64())
    return _tuples(found), history.cast(pa.int64())


def _tuples(table: pa.Table) -> pa.Table:
    """The tuple columns with stable types (an empty PostgreSQL result has none)."""
    out = {}
    for name in TUPLE_COLUMNS:
        kind = (
            pa.timestamp("us")
            if name in TIME_COLUMNS
            else pa.int64()
            if name == "sender"
            else pa.string()
        )
        col = table.column(name) if name in table.column_names else pa.nulls(table.num_rows)
        out[name] = pc.cast(col, kind) if col.type != kind else col
    return pa.table(out)


def _objects(column: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.object_]:
    """A string column as an object array whose repeated values share one Python string.

    Decoded through the column's dictionary: each distinct value becomes one ``str`` and rows
    hold references (8 bytes) to it, instead of one string object per row.
    """
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    values = encoded.dictionary.to_numpy(zero_copy_only=False)
    uniques: npt.NDArray[np.object_] = np.empty(len(values) + 1, dtype=object)
    uniques[:-1] = values  # the last slot stays None: the code of a null
    codes = pc.fill_null(encoded.indices, len(values)).to_numpy(zero_copy_only=False)
    out: npt.NDArray[np.object_] = uniques[np.asarray(codes, dtype=np.int64)]
    return out


SLOTS = ("user", "anon", "email", "phone", "prev")
"""Identifier slots of a tuple, in the order a tuple's hub is chosen and links are listed."""


@dataclass
class _Occurrences:
    """Identifier occurrences: which tuple row, which slot, which raw value became which key.

    Keys and raw values are Arrow strings: a Python string per occurrence (about 5M at 1M
    customers) cost seconds to make and again to hand to Arrow for the sort.
    """

    row: list[Ints] = field(default_factory=list)
    slot: list[Ints] = field(default_factory=list)
    key: list[pa.Array] = field(default_factory=list)
    raw: list[pa.Array] = field(default_factory=list)
    refused: list[tuple[str, str, str, str]] = field(default_factory=list)
    memo: Memo | None = None

    def add(self, rows: Ints, slot: int, keys: pa.Array, raws: pa.Array) -> None:
        self.row.append(rows)
        self.slot.append(np.full(len(rows), slot, dtype=np.int64))
        self.key.append(keys)
        self.raw.append(raws)

    @classmethod
    def of(cls, job: Callable[[_Occurrences], None], memo: Memo | None) -> _Occurrences:
        """The occurrences a job adds to an empty collection."""
        part = cls(memo=memo)
        job(part)
        return part

    def absorb(self, other: _Occurrences) -> None:
        """Add ``other``'s occurrences and refusals after these."""
        self.row.extend(other.row)
        self.slot.extend(other.slot)
        self.key.extend(other.key)
        self.raw.extend(other.raw)
        self.refused.extend(other.refused)

    def keys(self) -> pa.Array:
        return pa.concat_arrays(self.key) if self.key else pa.array([], pa.string())

    def raws(self) -> pa.Array:
        return pa.concat_arrays(self.raw) if self.raw else pa.array([], pa.string())


def build_graph(
    workspace_id: str, tuples: pa.Table, default_region: str | None, memo: Memo | None = None
) -> Graph:
    """Normalise the tuples' values (distinct values only) and derive nodes, links, anchors.

    Column-wise: Python touches each *distinct* raw value once (normalisation); occurrences,
    nodes, links and anchors are NumPy and pandas group-bys over the tuples. ``memo`` keeps
    normalisations across the builds of one run.
    """
    t = _tuples(tuples)
    # The senders (a DuckDB group-by, then a digest per sender) need only the tuples: found
    # on another thread while this one normalises (at 1M customers: 3.4 s, mostly overlapped).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-senders") as pool:
        senders = pool.submit(_senders, workspace_id, t)
        occ, generic, messages = _occurrences(t, default_region, memo)
        return _assemble(t, occ, generic, messages, senders.result())


def graph_keys(tuples: pa.Table, default_region: str | None, memo: Memo | None = None) -> list[str]:
    """The keys ('kind<US>value') of the nodes :func:`build_graph` would build from the tuples,
    sorted, without building the rest (an incremental run only probes the stored graph with
    its batch's keys; its graph is built once the history is read)."""
    occ, _, _ = _occurrences(_tuples(tuples), default_region, memo)
    keys: list[str] = pc.unique(occ.keys()).to_pylist()
    return sorted(keys)


def tuple_keys(
    tuples: pa.Table, default_region: str | None, memo: Memo | None = None
) -> tuple[Ints, Ints, pa.Array]:
    """Per identifier occurrence of the tuples: its row, its slot (:data:`SLOTS`) and its key
    ('kind<US>value'), as :func:`build_graph` reads them (a generic userId's or an alias's
    node among these tuples only)."""
    occ, _, _ = _occurrences(_tuples(tuples), default_region, memo)
    none = np.zeros(0, dtype=np.int64)
    row = np.concatenate(occ.row) if occ.row else none
    slot = np.concatenate(occ.slot) if occ.slot else none
    return row, slot, occ.keys()


def _occurrences(
    t: pa.Table, default_region: str | None, memo: Memo | None
) -> tuple[_Occurrences, npt.NDArray[np.bool_], pa.Array]:
    """Every identifier occurrence of the tuples (typed by :func:`_tuples`), normalised:
    (occurrences, whether each row's source is generic, message ids)."""
    source_kind = _objects(pc.fill_null(t.column("source_kind"), "other"))
    country = pc.utf8_upper(t.column("country"))
    two = pc.fill_null(pc.equal(pc.utf8_length(country), 2), False)
    region_arr = pc.if_else(two, country, pa.scalar(default_region, pa.string())).combine_chunks()
    # Unique per row: kept in Arrow and taken for the links and refusals that cite one (a
    # dictionary of 4.7M distinct ids at 1M customers cost seconds and bought nothing). The
    # userIds too: mostly distinct, a Python string each cost 2.2 s at 1M customers.
    messages = t.column("message_id").combine_chunks()
    generic = np.isin(source_kind, list(GENERIC_SOURCES))
    # Specific userIds: the source's own kind (or user_id namespaced by source).
    has_user = np.zeros(t.num_rows, dtype=bool)
    has_user[_present(t.column("user_id"))] = True
    kinds_of = {
        sk: USER_ID_KIND_BY_SOURCE.get(sk) or (None if sk in GENERIC_SOURCES else "user_id")
        for sk in set(source_kind[has_user].tolist())
    }
    jobs: list[Callable[[_Occurrences], None]] = []
    for sk, kind in sorted(kinds_of.items()):
        if kind is not None:
            rows = np.flatnonzero(has_user & (source_kind == sk))
            jobs.append(partial(_slot_of, t, "user_id", kind, rows, 0, sk, messages))
    for slot, column in ((2, "email"), (3, "phone")):
        rows = _present(t.column(column))
        jobs.append(partial(_slot_of, t, column, column, rows, slot, region_arr, messages))
    rows = _present(t.column("anonymous_id"))
    jobs.append(partial(_slot_of, t, "anonymous_id", "anonymous_id", rows, 1, None, messages))
    occ = _Occurrences(memo=memo)
    # Two at a time: a slot's Arrow and NumPy work (without the GIL) overlaps the other's
    # Python normalisation. The parts are kept in job order, so the result does not change.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="siyu-slots") as pool:
        for part in pool.map(lambda job: _Occurrences.of(job, memo), jobs):
            occ.absorb(part)
    _late(occ, t, generic, has_user, source_kind, messages)
    return occ, generic, messages


def _slot_of(
    t: pa.Table,
    column: str,
    kind: str,
    rows: Ints,
    slot: int,
    extra: pa.Array | str | None,
    messages: pa.Array,
    occ: _Occurrences,
) -> None:
    """:func:`_slot` of ``column``'s values at ``rows``; ``extra`` (each value's region or
    source) is a column of the tuples or one value for all."""
    ea = extra.take(pa.array(rows)) if isinstance(extra, pa.Array) else _constant(extra, len(rows))
    _slot(occ, kind, rows, slot, _taken(t, column, rows), ea, messages)


def _taken(table: pa.Table, column: str, rows: Ints) -> pa.Array:
    """The column's values at ``rows`` (Arrow, no Python string per value)."""
    return table.column(column).take(pa.array(rows)).combine_chunks()


def _constant(value: str | None, n: int) -> pa.Array:
    """``n`` times the same string (or null), as one Arrow column."""
    return (
        pa.nulls(n, pa.string()) if value is None else pa.repeat(pa.scalar(value, pa.string()), n)
    )


def _present(column: pa.ChunkedArray) -> Ints:
    """The rows where a string column holds a non-empty value."""
    present = pc.fill_null(pc.not_equal(column, ""), False)
    return np.flatnonzero(np.asarray(present.to_numpy(), dtype=bool))


def _slot(
    occ: _Occurrences,
    kind: str,
    rows: Ints,
    slot: int,
    va: pa.Array,
    ea: pa.Array,
    messages: pa.Array,
) -> None:
    """Normalise one slot's values ``va`` at tuple ``rows`` (each distinct (value,
    region-or-source ``ea``) once) into keys."""
    if not len(rows):
        return
    spec = get_kind(kind)
    combined = pc.binary_join_element_wise(va, pc.fill_null(ea, "\x00"), "\x1e")
    encoded = pc.dictionary_encode(combined)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    first_of = _first_occurrences(codes, len(encoded.dictionary))
    distinct_v = va.take(pa.array(first_of))
    distinct_e = ea.take(pa.array(first_of))
    norm, why = normalise_column(occ.memo, kind, spec, distinct_v, distinct_e)
    keys = _node_keys(_node_kind(kind), norm)  # one per distinct value
    per_row = keys.take(encoded.indices)
    valid = per_row.is_valid()
    ok = np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)
    occ.add(rows[ok], slot, per_row.filter(valid), va.filter(valid))
    bad = np.flatnonzero(~ok)
    if bad.size:
        # One entry per (kind, value, reason), with the value's first message.
        first: dict[tuple[str, str], str] = {}
        refusals: set[tuple[str, str, str]] = set()
        cited = messages.take(pa.array(rows[bad])).to_pylist()
        codes_bad = codes[bad]
        raw = distinct_v.take(pa.array(codes_bad)).to_pylist()
        for d, value, m in zip(codes_bad.tolist(), raw, cited, strict=True):
            k = (kind, value)
            first[k] = min(m, first.get(k, m))
            refusals.add((*k, why.get(d) or "refused"))
        occ.refused.extend((k, v, r, first[(k, v)]) for k, v, r in sorted(refusals))


def _first_occurrences(codes: Ints, distinct: int) -> Ints:
    """The row of each code's first occurrence, in code order, for the codes of an Arrow
    dictionary encoding of ``distinct`` values: its dictionary is in order of first
    occurrence, so each first occurrence is a new maximum (one pass, not the sort of
    ``np.unique(..., return_index=True)``, which is kept for any other numbering)."""
    if not len(codes):
        return codes
    new = np.empty(len(codes), dtype=bool)
    new[0] = True
    new[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    first: Ints = np.flatnonzero(new)
    if len(first) != distinct or codes[0] != 0:
        first = np.unique(codes, return_index=True)[1]
    return first


def _node_keys(node_kind: str, values: pa.Array) -> pa.Array:
    """'kind<US>value' of normalised values (null stays null); an email at an Amazon
    marketplace relay domain is an ``amazon_buyer``."""
    prefix: pa.Array | pa.Scalar = pa.scalar(f"{node_kind}{SEP}", pa.string())
    if node_kind == "email":
        relay = pc.fill_null(pc.match_substring(values, "@marketplace.amazon."), False)
        prefix = pc.if_else(relay, f"amazon_buyer{SEP}", f"email{SEP}")
    return pc.binary_join_element_wise(prefix, values, "")


Memo = dict[tuple[str, str, str | None], tuple[str | None, str | None]]
"""(kind, raw value, region or source) -> (normalised value, reason refused), for one run."""


def normalise_column(
    memo: Memo | None, kind: str, spec: IdentifierKind, values: pa.Array, extra: pa.Array
) -> tuple[pa.Array, dict[int, str]]:
    """Normalise distinct (value, region-or-source ``extra``) pairs: the normal forms as an
    Arrow column (null where refused) and the reason of each refused one, by index.

    :mod:`siyu.identity.fastpath` settles the common spellings column-wise (plain addresses,
    phones in E.164 or a simple national format, plain ids: the same result as the per-value
    normaliser) and :func:`blocked_column` screens them; only the rest are normalised one by
    one in Python, through ``memo`` (an incremental run normalises its batch's values twice:
    for the look-up, then in its components' graph). A Python string per value, made for
    every value, cost more than the normalisation of the few that need Python (an incremental
    batch's graph holds about 40,000 distinct values).
    """
    n = len(values)
    values = values.cast(pa.string())
    if spec.namespace_by_source:
        sources = extra.cast(pa.string())
        settled = np.zeros(n, dtype=bool)
        pieces: list[tuple[Ints, pa.Array]] = []
        for source in pc.unique(sources.drop_null()).to_pylist():
            at = np.flatnonzero(_mask_of(pc.equal(sources, source)))
            ok, out = fast_namespaced(spec, values.take(pa.array(at)), source)
            settled[at[ok]] = True
            pieces.append((at[ok], out.filter(pa.array(ok))))
        quick = np.concatenate([p for p, _ in pieces]) if pieces else np.zeros(0, np.int64)
        fast = (
            pa.concat_arrays([a.cast(pa.string()) for _, a in pieces])
            if pieces
            else pa.array([], pa.string())
        )
    else:
        regions = extra.cast(pa.string()) if spec.uses_region else None
        settled, everything = fast_values(spec, values, regions)
        quick = np.flatnonzero(settled)
        fast = everything.cast(pa.string()).filter(pa.array(settled))
    why: dict[int, str] = {}
    blocked = blocked_column(spec, fast)
    if blocked:
        keep = np.ones(len(quick), dtype=bool)
        shown = fast.take(pa.array(sorted(blocked))).to_pylist()
        for j, value in zip(sorted(blocked), shown, strict=True):
            keep[j] = False
            why[int(quick[j])] = f"{spec.name} {value!r} is blocked by pattern {blocked[j]!r}"
        fast = pc.if_else(pa.array(keep), fast, pa.scalar(None, pa.string()))
    slow = np.flatnonzero(~settled)
    slow_norm: list[str | None] = []
    if len(slow):
        slow_values = values.take(pa.array(slow)).to_pylist()
        slow_extra = extra.cast(pa.string()).take(pa.array(slow)).to_pylist()
        slow_norm, slow_why = _normalise_slow(memo, kind, spec, slow_values, slow_extra)
        for i, reason in zip(slow.tolist(), slow_why, strict=True):
            if reason is not None:
                why[i] = reason
    positions = np.concatenate([quick, slow])
    joined = pa.concat_arrays([fast, pa.array(slow_norm, pa.string())])
    order = np.empty(n, dtype=np.int64)
    order[positions] = np.arange(n, dtype=np.int64)
    return joined.take(pa.array(order)), why


def _mask_of(result: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)


def _normalise_slow(
    memo: Memo | None,
    kind: str,
    spec: IdentifierKind,
    values: list[str],
    extra: list[str | None],
) -> tuple[list[str | None], list[str | None]]:
    """The values the fast path left, one by one (:func:`normalise_many`), those in ``memo``
    not redone; ``extra`` is each value's region, or its source for a namespaced kind."""
    todo = list(range(len(values)))
    norm: list[str | None] = [None] * len(values)
    why: list[str | None] = [None] * len(values)
    if memo is not None:
        todo = []
        for i, (v, e) in enumerate(zip(values, extra, strict=True)):
            known = memo.get((kind, v, e))
            if known is None:
                todo.append(i)
            else:
                norm[i], why[i] = known
    if spec.namespace_by_source:
        for source in sorted({extra[i] for i in todo}, key=str):
            picked = [i for i in todo if extra[i] == source]
            got, reasons = normalise_many(spec, [values[i] for i in picked], source=source)
            for i, g, r in zip(picked, got, reasons, strict=True):
                norm[i], why[i] = g, r
    elif todo:
        regions = [extra[i] for i in todo] if spec.uses_region else None
        got, reasons = normalise_many(spec, [values[i] for i in todo], region=regions)
        for i, g, r in zip(todo, got, reasons, strict=True):
            norm[i], why[i] = g, r
    if memo is not None:
        for i in todo:
            memo[(kind, values[i], extra[i])] = (norm[i], why[i])
    return norm, why


def _late(
    occ: _Occurrences,
    t: pa.Table,
    generic: npt.NDArray[np.bool_],
    has_user: npt.NDArray[np.bool_],
    source_kind: npt.NDArray[np.object_],
    messages: pa.Array,
) -> None:
    """Generic userIds and alias previousIds: the one node with that raw id, else namespaced.

    The raw id is looked up among the specific userIds (the one key they became, when exactly
    one), then (previousIds only) among anonymous ids; otherwise it is a ``user_id`` of the
    event's source.
    """
    user_rows = np.flatnonzero(has_user & generic)
    prev_rows = _present(t.column("previous_id"))
    wanted = [
        (0, user_rows, _taken(t, "user_id", user_rows)),
        (4, prev_rows, _taken(t, "previous_id", prev_rows)),
    ]
    asked = pc.unique(pa.concat_arrays([raw for _, _, raw in wanted]))
    slots_all = np.concatenate(occ.slot) if occ.slot else np.zeros(0, dtype=np.int64)
    keys_all, raws_all = occ.keys(), occ.raws()
    # Hash look-ups in Arrow (C++), not pandas indexes of Python strings; only occurrences of
    # a raw id that is looked up are grouped (a few percent of the userIds).
    is_asked = pc.is_in(raws_all, value_set=asked)
    is_user = pc.and_(pa.array(slots_all == 0), is_asked)
    specific = (
        pa.table({"raw": raws_all.filter(is_user), "key": keys_all.filter(is_user)})
        .group_by(["raw", "key"], use_threads=False)
        .aggregate([])
    )
    counted = specific.group_by("raw", use_threads=False).aggregate([("key", "count")])
    single = counted.filter(pc.equal(counted.column("key_count"), 1)).column("raw")
    unique_user = specific.filter(pc.is_in(specific.column("raw"), value_set=single))
    is_anon = pc.and_(pa.array(slots_all == 1), is_asked)
    anon_key = (
        pa.table({"raw": raws_all.filter(is_anon), "key": keys_all.filter(is_anon)})
        .group_by("raw", use_threads=False)
        .aggregate([("key", "first")])
    )
    for slot, rows, query in wanted:
        if not len(rows):
            continue
        found = _look_up(unique_user, "key", query)
        if slot == 4:
            found = pc.coalesce(found, _look_up(anon_key, "key_first", query))
        valid = found.is_valid()
        hit = np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)
        occ.add(rows[hit], slot, found.filter(valid), query.filter(valid))
        rest = np.flatnonzero(~hit)
        for sk in sorted(set(source_kind[rows[rest]].tolist())):
            mine = rest[source_kind[rows[rest]] == sk]
            _slot(
                occ,
                "user_id",
                rows[mine],
                slot,
                query.take(pa.array(mine)),
                _constant(sk, len(mine)),
                messages,
            )


def _look_up(table: pa.Table, key: str, query: pa.Array) -> pa.Array:
    """The ``key`` of each raw id in ``query`` (one row per ``raw`` in ``table``), null where
    it has none."""
    position = pc.index_in(query, value_set=table.column("raw").combine_chunks())
    return table.column(key).combine_chunks().take(position)


def _assemble(
    t: pa.Table,
    occ: _Occurrences,
    generic: npt.NDArray[np.bool_],
    messages: pa.Array,
    senders: _Senders,
) -> Graph:
    """Nodes, their first/last seen, source and account, links with evidence, and anchors."""
    n_rows = t.num_rows
    row = np.concatenate(occ.row) if occ.row else np.zeros(0, dtype=np.int64)
    slot = np.concatenate(occ.slot) if occ.slot else np.zeros(0, dtype=np.int64)
    node, sorted_keys = _sorted_codes(occ.keys())
    n = len(sorted_keys)
    t0 = np.asarray(t.column("first_seen").to_numpy(), dtype="datetime64[us]")
    first, last = _seen(t, row, node, n)
    src, account = _sources(t, row, slot, node, generic)
    # Per tuple row, the node of each slot (-1: none); the hub is the first present slot.
    per_slot = np.full((len(SLOTS), n_rows), -1, dtype=np.int64)
    per_slot[slot, row] = node
    hub = np.full(n_rows, -1, dtype=np.int64)
    for s in range(len(SLOTS)):
        hub = np.where((hub < 0) & (per_slot[s] >= 0), per_slot[s], hub)
    # Candidate links (hub, other slot) per row; per pair the earliest evidence wins, ties by
    # message id (its rank among the rows, so the sort is over integers), row and slot.
    cand_rows, cand_slots = [], []
    for s in range(len(SLOTS)):
        rows = np.flatnonzero((per_slot[s] >= 0) & (hub >= 0) & (per_slot[s] != hub))
        cand_rows.append(rows)
        cand_slots.append(np.full(len(rows), s, dtype=np.int64))
    c_row = np.concatenate(cand_rows)
    c_slot = np.concatenate(cand_slots)
    other = per_slot[c_slot, c_row]
    c_a = np.minimum(hub[c_row], other)
    c_b = np.maximum(hub[c_row], other)
    c_t0 = t0[c_row].astype(np.int64)
    rank = _message_rank(t.column("message_id").combine_chunks())
    order = _link_order(c_a, c_b, c_t0, rank[c_row], c_row, c_slot, n)
    c_a, c_b, c_row, c_slot, c_t0 = c_a[order], c_b[order], c_row[order], c_slot[order], c_t0[order]
    first_of_pair = np.ones(len(order), dtype=bool)
    first_of_pair[1:] = (c_a[1:] != c_a[:-1]) | (c_b[1:] != c_b[:-1])
    link_a = c_a[first_of_pair]
    link_b = c_b[first_of_pair]
    link_row = c_row[first_of_pair]
    link_slot = c_slot[first_of_pair]
    link_t0 = c_t0[first_of_pair]
    del c_a, c_b, c_row, c_slot, c_t0, order, other
    return Graph(
        key_array=sorted_keys,
        first_seen=first.astype("datetime64[us]"),
        last_seen=last.astype("datetime64[us]"),
        source_id=src,
        account_source=account,
        link_a=link_a,
        link_b=link_b,
        link_message=messages.take(pa.array(link_row)),
        link_rule=pc.if_else(pa.array(link_slot == 4), "alias", "same_event"),
        link_seen=link_t0.astype("datetime64[us]"),
        anchors=senders.placed(per_slot),
        refused=sorted(occ.refused),
        raw_pairs=(occ.raws(), node),
    )


def _seen(t: pa.Table, row: Ints, node: Ints, n: int) -> tuple[Ints, Ints]:
    """Each node's first and last seen (microseconds): over the customer's own acts where any
    of its tuples has one, else over every event (a WhatsApp id that only status callbacks
    carried is still seen when they came)."""
    lowest, highest = np.iinfo(np.int64).min, np.iinfo(np.int64).max

    def per_node(column: str, earliest: bool) -> Ints:
        """The column's minimum (``earliest``) or maximum per node; nulls never win."""
        start = highest if earliest else lowest
        values = pc.fill_null(t.column(column).cast(pa.int64()), start)
        out = np.full(n, start, dtype=np.int64)
        pick = np.minimum if earliest else np.maximum
        pick.at(out, node, np.asarray(values.to_numpy(), dtype=np.int64)[row])
        return out

    first, last = per_node("first_seen", True), per_node("last_seen", False)
    own_first, own_last = per_node("own_first_seen", True), per_node("own_last_seen", False)
    acted = own_first != highest
    return np.where(acted, own_first, first), np.where(acted, own_last, last)


def _link_order(
    a: Ints, b: Ints, seen: Ints, rank: Ints, row: Ints, slot: Ints, n_nodes: int
) -> Ints:
    """The order of candidate links by (a, b, seen, message rank, row, slot).

    Sorted on three keys where the pairs and the (rank, row, slot) triples fit one int64 each
    (a sort pass per key: the six keys of 4.7M candidates at 1M customers took 1.6 s).
    """
    rows = int(row.max()) + 1 if len(row) else 0
    ranks = int(rank.max()) + 1 if len(rank) else 0
    if n_nodes < 2**31 and rows < 2**29 and ranks < 2**29:
        tail = (rank * rows + row) * len(SLOTS) + slot
        return np.lexsort((tail, seen, a * n_nodes + b))
    return np.lexsort((slot, row, rank, seen, b, a))


def _message_rank(messages: pa.Array) -> Ints:
    """Each row's message id's rank (only the order matters). A full run reads the tuples in
    message-id order (``tuples_sql``), so a 30 ms check usually replaces a string sort (0.6 s
    for the 4.7M ids at 1M customers)."""
    if messages.null_count == 0 and (
        len(messages) < 2 or pc.all(pc.less(messages[:-1], messages[1:])).as_py()
    ):
        return np.arange(len(messages), dtype=np.int64)
    ranked = pc.rank(messages, sort_keys="ascending", tiebreaker="dense")
    return np.asarray(ranked.to_numpy(), dtype=np.int64)


def _sorted_codes(key: pa.Array) -> tuple[Ints, pa.Array]:
    """Per occurrence, the index of its key among the distinct keys sorted, and those keys.

    What ``pd.factorize(key, sort=True)`` gives, in Arrow: the keys hashed in C++ and the
    distinct ones sorted by DuckDB in parallel (UTF-8 byte order is code-point order, as Python
    sorts; Arrow's one-core sort of the 3.3M keys at 1M customers took 1.3 s, DuckDB 0.6 s).
    """
    encoded = pc.dictionary_encode(key)
    distinct = pa.table(
        {"k": encoded.dictionary, "i": pa.array(np.arange(len(encoded.dictionary)))}
    )
    order = arrow_query("SELECT i FROM d ORDER BY k", d=distinct).column("i").combine_chunks()
    rank = np.empty(len(order), dtype=np.int64)
    rank[np.asarray(order.to_numpy(), dtype=np.int64)] = np.arange(len(order), dtype=np.int64)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    node: Ints = rank[codes]
    return node, encoded.dictionary.take(order).cast(pa.string())


NODE_SOURCES_SQL = """
    SELECT node, min(source) AS source_id,
           substr(min(CASE WHEN slot = 0 AND source <> ''
                           THEN CASE WHEN generic THEN '1' ELSE '0' END || source END), 2)
             AS account_source_id
    FROM occurrences GROUP BY node ORDER BY node
"""
"""Per node, the least source it was seen on, and the source of its account: the least source
whose userId it is, a specific source before a generic one (the '0'/'1' mark)."""


def _sources(
    t: pa.Table, row: Ints, slot: Ints, node: Ints, generic: npt.NDArray[np.bool_]
) -> tuple[pa.Array, pa.Array]:
    """(source, account source) per node 0..n-1 (every node has an occurrence), in SQL over
    the occurrences: at 1M customers two factorize-and-minimum passes over 5M Python strings
    cost 2.4 s on one core."""
    occurrences = pa.table(
        {
            "node": pa.array(node),
            "slot": pa.array(slot),
            "source": t.column("source_id").take(pa.array(row)),
            "generic": pa.array(generic[row]),
        }
    )
    found = arrow_query(NODE_SOURCES_SQL, occurrences=occurrences)
    return (
        found.column("source_id").combine_chunks().cast(pa.string()),
        found.column("account_source_id").combine_chunks().cast(pa.string()),
    )


SENDERS_SQL = """
    SELECT CASE WHEN user_id <> '' THEN 'u|' || coalesce(source_id, 'None') || '|' || user_id
                ELSE 'a|' || anonymous_id END AS id,
           min(row) AS first_row, min(first_seen) AS first_seen, min(sender) AS sender,
           bool_or(own_first_seen IS NOT NULL) AS acted
    FROM tuples WHERE user_id <> '' OR anonymous_id <> ''
    GROUP BY 1 ORDER BY 1
"""
"""One row per sender of the tuples: its id, first row, first time, hash (the same on every
row of the sender) and whether it acted itself, in id order (DuckDB compares strings
byte-wise: UTF-8 byte order is code-point order, as Python sorts)."""


@dataclass
class _Senders:
    """The tuples' senders with their provisional ids, before their nodes are known."""

    anchors: Anchors
    """Every field but ``node`` (-1 until :meth:`placed`)."""
    first_row: Ints
    """Per sender, its first tuple row."""
    own: npt.NDArray[np.bool_]
    """Per sender, whether it is a userId (else an anonymousId)."""

    def placed(self, per_slot: Ints) -> Anchors:
        """The anchors with their nodes: a sender's node is the one of its first row, its
        user_id slot, else its anonymousId's (``per_slot``: the node per slot and row)."""
        r = self.first_row
        node = np.where(self.own, per_slot[0, r], per_slot[1, r])
        return replace(self.anchors, node=node.astype(np.int64))


def _senders(workspace_id: str, t: pa.Table) -> _Senders:
    """One anchor per sender ((source, userId) or anonymousId) with its provisional id.

    The senders are grouped and sorted in SQL over the tuple columns (``arrow_query``): at 1M
    customers (4.7M tuples, 2.8M senders) building each row's sender id, hashing and sorting
    them with Arrow kernels and NumPy took 5.7 s on one core, the fused query 1.4 s.
    """
    tuples = pa.table(
        {
            "row": pa.array(np.arange(t.num_rows, dtype=np.int64)),
            **{
                c: t.column(c)
                for c in (
                    "source_id",
                    "user_id",
                    "anonymous_id",
                    "first_seen",
                    "sender",
                    "own_first_seen",
                )
            },
        }
    )
    grouped = arrow_query(SENDERS_SQL, tuples=tuples)
    if grouped.num_rows == 0:
        none = np.zeros(0, dtype=np.int64)
        return _Senders(Anchors.empty(), none, none.astype(bool))
    r = np.asarray(grouped.column("first_row").to_numpy(), dtype=np.int64)
    taken = pa.array(r)
    user = t.column("user_id").take(taken).combine_chunks()
    has = np.asarray(
        pc.fill_null(pc.not_equal(user, ""), False).to_numpy(zero_copy_only=False), dtype=bool
    )
    own = pa.array(has)
    none = pa.scalar(None, pa.string())
    uid = pc.if_else(own, user, none)
    aid = pc.if_else(own, none, t.column("anonymous_id").take(taken).combine_chunks())
    sid = pc.if_else(own, t.column("source_id").take(taken).combine_chunks(), none)
    provisional = pa.array(
        _customer_keys(
            workspace_id,
            np.asarray(uid.to_numpy(zero_copy_only=False), dtype=object),
            np.asarray(aid.to_numpy(zero_copy_only=False), dtype=object),
        ),
        pa.string(),
    )
    anchors = Anchors(
        anchor_id=grouped.column("id").combine_chunks().cast(pa.string()),
        source_id=sid,
        user_id=uid,
        anonymous_id=aid,
        node=np.full(len(r), -1, dtype=np.int64),
        provisional_id=provisional,
        first_seen=np.asarray(
            grouped.column("first_seen").cast(pa.timestamp("us")).to_numpy(), dtype=np.int64
        ).astype("datetime64[us]"),
        sender=grouped.column("sender").combine_chunks().cast(pa.int64()),
        acted=np.asarray(grouped.column("acted").to_numpy(), dtype=bool),
    )
    return _Senders(anchors, r, has)


def _customer_keys(
    workspace_id: str, user: npt.NDArray[np.object_], anon: npt.NDArray[np.object_]
) -> list[str | None]:
    """:func:`customer_key` over columns (the same digest, without a call per sender)."""
    blake2b = hashlib.blake2b
    prefix = f"{workspace_id}|"
    out: list[str | None] = [
        "cus_" + blake2b(f"{prefix}u:{u}".encode(), digest_size=10).hexdigest()
        if u
        else "cus_" + blake2b(f"{prefix}a:{a}".encode(), digest_size=10).hexdigest()
        if a
        else None
        for u, a in zip(user.tolist(), anon.tolist(), strict=True)
    ]
    return out

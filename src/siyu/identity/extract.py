"""Identifiers and links from the events table, set-based.

The database groups events by the identifiers they carry (most events of a sender repeat the same
userId/anonymousId/traits), so Python only sees distinct identifier tuples, and normalises each
distinct raw value once (:func:`siyu.identity.normalise_many`). An event with two or more
identifiers links them: every identifier to the event's anchor (its userId, else anonymousId),
which is the node its provisional customer id was derived from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import sqlalchemy as sa

from siyu.collect.rows import customer_key
from siyu.identity.blocking import normalise_many
from siyu.identity.kind import get_kind
from siyu.identity.tables import identity_anchors
from siyu.store import schema
from siyu.store.bulk import stage, unstage

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


def tuples_sql(dialect: str, staged: tuple[str, str] | None) -> str:
    """Distinct identifier tuples of a workspace's events (optionally only some messages)."""
    country = (
        f"upper(coalesce({_json_text(dialect, 'e.traits', 'country')}, "
        f"{_json_text(dialect, 'e.traits', 'address', 'country')}, "
        f"right({_json_text(dialect, 'e.context', 'locale')}, 2)))"
    )
    where = "e.workspace_id = :ws"
    if staged is not None:
        ids, anchors = staged
        where += (
            f" AND (e.message_id IN (SELECT message_id FROM {ids})"
            f" OR (e.user_id IS NOT NULL AND EXISTS (SELECT 1 FROM {anchors} a"
            " WHERE a.user_id = e.user_id AND a.source_id = coalesce(e.source_id, '')))"
            f" OR (e.user_id IS NULL AND EXISTS (SELECT 1 FROM {anchors} a"
            " WHERE a.user_id IS NULL AND a.anonymous_id = e.anonymous_id)))"
        )
    return f"""
        SELECT e.source_id, s.kind AS source_kind, e.user_id, e.anonymous_id,
               CASE WHEN e.type = 'alias' THEN e.previous_id END AS previous_id,
               {_json_text(dialect, "e.traits", "email")} AS email,
               {_json_text(dialect, "e.traits", "phone")} AS phone,
               {country} AS country,
               min(e.timestamp) AS first_seen, max(e.timestamp) AS last_seen,
               min(e.message_id) AS message_id
        FROM events e LEFT JOIN sources s
          ON s.source_id = e.source_id AND s.workspace_id = e.workspace_id
        WHERE {where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        ORDER BY 1, 3, 4, 5, 6, 7, 8
    """


@dataclass
class Graph:
    """Identity nodes, links between them and event anchors, as parallel columns."""

    keys: list[str]
    """'kind<US>value' per node, sorted: index order is key order on every subset."""
    first_seen: list[datetime]
    last_seen: list[datetime]
    source_id: list[str | None]
    account_source: list[str | None]
    link_a: Ints
    link_b: Ints
    link_message: list[str]
    link_rule: list[str]
    link_seen: list[datetime]
    anchors: list[dict[str, Any]]
    """anchor_id, source_id, user_id, anonymous_id, node (-1: none), provisional_id, first_seen."""
    refused: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(kind, raw value, reason, message_id) of values that were invalid or blocked."""
    raw_nodes: dict[str, set[int]] = field(default_factory=dict)
    """Raw value as the events carry it -> nodes it became (for evaluation against a truth)."""

    def kind(self, i: int) -> str:
        return self.keys[i].split(SEP, 1)[0]

    def value(self, i: int) -> str:
        return self.keys[i].split(SEP, 1)[1]


def _node_kind(kind: str) -> str:
    """WhatsApp ids are phone numbers: one node for both (``same_values_as``)."""
    return get_kind(kind).same_values_as or kind


def fetch_tuples(
    conn: sa.Connection,
    workspace_id: str,
    message_ids: Sequence[str] | None = None,
    anchors: Sequence[tuple[str | None, str | None, str | None]] = (),
) -> list[dict[str, Any]]:
    """The distinct identifier tuples, as dictionaries (few: one per sender and traits variant).

    With ``message_ids``, only those events plus every event of the given ``anchors``
    ((source_id, user_id, anonymous_id) senders) are read: an incremental run.
    """
    dialect = conn.dialect.name
    if message_ids is None:
        result = conn.execute(sa.text(tuples_sql(dialect, None)), {"ws": workspace_id})
        return [dict(row._mapping) for row in result]
    ids = pa.table({"message_id": pa.array(sorted(set(message_ids)), pa.string())})
    senders = pa.table(
        {
            "source_id": pa.array([s or "" for s, _, _ in anchors], pa.string()),
            "user_id": pa.array([u for _, u, _ in anchors], pa.string()),
            "anonymous_id": pa.array([a for _, _, a in anchors], pa.string()),
        }
    )
    ids_name = stage(conn, schema.events, ids)
    anchors_name = stage(conn, identity_anchors, senders)
    try:
        sql = tuples_sql(dialect, (ids_name, anchors_name))
        result = conn.execute(sa.text(sql), {"ws": workspace_id})
        return [dict(row._mapping) for row in result]
    finally:
        unstage(conn, ids_name)
        unstage(conn, anchors_name)


def build_graph(workspace_id: str, rows: list[dict[str, Any]], default_region: str | None) -> Graph:
    """Normalise the tuples' values (distinct values only) and derive nodes, links, anchors."""
    raw: list[tuple[int, str, str, str, str | None]] = []  # row, slot, kind, value, region
    specific_users: dict[str, set[str]] = {}
    for r_i, row in enumerate(rows):
        region = row["country"] if row["country"] and len(row["country"]) == 2 else default_region
        source_kind = row["source_kind"] or "other"
        if row["user_id"]:
            kind = USER_ID_KIND_BY_SOURCE.get(source_kind)
            if kind is None and source_kind not in GENERIC_SOURCES:
                kind = "user_id"
            if kind is not None:
                raw.append((r_i, "user", kind, row["user_id"], source_kind))
        for slot in ("email", "phone"):
            if row[slot]:
                raw.append((r_i, slot, slot, str(row[slot]), region))
        if row["anonymous_id"]:
            raw.append((r_i, "anon", "anonymous_id", row["anonymous_id"], None))
    keys_by_slot, refused = _normalise(raw, rows)
    for (r_i, slot), key in keys_by_slot.items():
        if slot == "user":
            specific_users.setdefault(rows[r_i]["user_id"], set()).add(key)
    anon_keys = {
        rows[r_i]["anonymous_id"]: key
        for (r_i, slot), key in keys_by_slot.items()
        if slot == "anon"
    }
    # Generic userIds and alias previousIds: the one node with that raw id, else namespaced.
    late: list[tuple[int, str, str, str, str | None]] = []
    for r_i, row in enumerate(rows):
        source_kind = row["source_kind"] or "other"
        wanted = [("user", row["user_id"])] if source_kind in GENERIC_SOURCES else []
        wanted.append(("prev", row["previous_id"]))
        for slot, value in wanted:
            if not value:
                continue
            found = specific_users.get(value, set())
            if len(found) == 1:
                keys_by_slot[(r_i, slot)] = next(iter(found))
            elif slot == "prev" and value in anon_keys:
                keys_by_slot[(r_i, slot)] = anon_keys[value]
            else:
                late.append((r_i, slot, "user_id", value, source_kind))
    more, more_refused = _normalise(late, rows)
    keys_by_slot.update(more)
    refused.extend(more_refused)
    return _assemble(workspace_id, rows, keys_by_slot, refused)


def _normalise(
    raw: list[tuple[int, str, str, str, str | None]], rows: list[dict[str, Any]]
) -> tuple[dict[tuple[int, str], str], list[tuple[str, str, str, str]]]:
    """Normalise per kind over distinct (value, region-or-source) pairs, in one batch per kind."""
    by_kind: dict[str, list[tuple[int, str, str, str | None]]] = {}
    for r_i, slot, kind, value, extra in raw:
        by_kind.setdefault(kind, []).append((r_i, slot, value, extra))
    keys: dict[tuple[int, str], str] = {}
    refused: list[tuple[str, str, str, str]] = []
    for kind, items in by_kind.items():
        spec = get_kind(kind)
        distinct = sorted({(value, extra) for _, _, value, extra in items}, key=str)
        out: dict[tuple[str, str | None], tuple[str | None, str | None]] = {}
        if spec.namespace_by_source:
            for source in sorted({e for _, e in distinct}, key=str):
                vals = [v for v, e in distinct if e == source]
                norm, why = normalise_many(kind, vals, source=source)
                out.update({(v, source): (n, w) for v, n, w in zip(vals, norm, why, strict=True)})
        else:
            vals = [v for v, _ in distinct]
            regions = [e for _, e in distinct] if spec.uses_region else None
            norm, why = normalise_many(kind, vals, region=regions)
            out.update({d: (n, w) for d, n, w in zip(distinct, norm, why, strict=True)})
        node_kind = _node_kind(kind)
        for r_i, slot, value, extra in items:
            normalised, reason = out[(value, extra)]
            if normalised is None:
                refused.append((kind, value, reason or "refused", rows[r_i]["message_id"]))
                continue
            if node_kind == "email" and "@marketplace.amazon." in normalised:
                keys[(r_i, slot)] = f"amazon_buyer{SEP}{normalised}"
            else:
                keys[(r_i, slot)] = f"{node_kind}{SEP}{normalised}"
    unique_refused = sorted({(k, v, r, "") for k, v, r, _ in refused})
    first_msg: dict[tuple[str, str], str] = {}
    for k, v, _, m in refused:
        first_msg[(k, v)] = min(m, first_msg.get((k, v), m))
    return keys, [(k, v, r, first_msg[(k, v)]) for k, v, r, _ in unique_refused]


def _assemble(
    workspace_id: str,
    rows: list[dict[str, Any]],
    keys_by_slot: dict[tuple[int, str], str],
    refused: list[tuple[str, str, str, str]],
) -> Graph:
    keys = sorted(set(keys_by_slot.values()))
    index = {k: i for i, k in enumerate(keys)}
    n = len(keys)
    first: list[datetime | None] = [None] * n
    last: list[datetime | None] = [None] * n
    source: list[str | None] = [None] * n
    account: list[str | None] = [None] * n
    raw_nodes: dict[str, set[int]] = {}
    links: dict[tuple[int, int], tuple[datetime, str, str]] = {}
    anchors: dict[str, dict[str, Any]] = {}
    slots = ("user", "anon", "email", "phone", "prev")
    raw_col = {"user": "user_id", "anon": "anonymous_id", "prev": "previous_id"}
    for r_i, row in enumerate(rows):
        nodes = {s: index[keys_by_slot[(r_i, s)]] for s in slots if (r_i, s) in keys_by_slot}
        t0, t1, msg = row["first_seen"], row["last_seen"], row["message_id"]
        for slot, i in nodes.items():
            first[i] = t0 if first[i] is None or t0 < first[i] else first[i]
            last[i] = t1 if last[i] is None or t1 > last[i] else last[i]
            source[i] = _min(source[i], row["source_id"])
            raw_nodes.setdefault(str(row[raw_col.get(slot, slot)]), set()).add(i)
        if "user" in nodes and row["source_id"]:
            generic = (row["source_kind"] or "other") in GENERIC_SOURCES
            i = nodes["user"]
            mark = ("1" if generic else "0") + row["source_id"]
            account[i] = _min(account[i], mark)
        hub = nodes.get("user", nodes.get("anon"))
        if hub is None and nodes:
            hub = nodes[next(s for s in slots if s in nodes)]
        for slot, i in nodes.items():
            if hub is None or i == hub:
                continue
            pair = (min(hub, i), max(hub, i))
            rule = "alias" if slot == "prev" else "same_event"
            seen = links.get(pair)
            if seen is None or (t0, msg) < seen[:2]:
                links[pair] = (t0, msg, rule)
        if row["user_id"] or row["anonymous_id"]:
            user = row["user_id"] or None
            anchor_id = f"u|{row['source_id']}|{user}" if user else f"a|{row['anonymous_id']}"
            node = nodes.get("user" if user else "anon", -1)
            found = anchors.get(anchor_id)
            if found is None:
                anchors[anchor_id] = {
                    "anchor_id": anchor_id,
                    "source_id": row["source_id"] if user else None,
                    "user_id": user,
                    "anonymous_id": None if user else row["anonymous_id"],
                    "node": node,
                    "provisional_id": customer_key(workspace_id, user, row["anonymous_id"]),
                    "first_seen": t0,
                }
            elif t0 < found["first_seen"]:
                found["first_seen"] = t0
    pairs = sorted(links)
    return Graph(
        keys=keys,
        first_seen=first,  # type: ignore[arg-type]
        last_seen=last,  # type: ignore[arg-type]
        source_id=source,
        account_source=[a[1:] if a else None for a in account],
        link_a=np.array([p[0] for p in pairs], dtype=np.int64),
        link_b=np.array([p[1] for p in pairs], dtype=np.int64),
        link_message=[links[p][1] for p in pairs],
        link_rule=[links[p][2] for p in pairs],
        link_seen=[links[p][0] for p in pairs],
        anchors=sorted(anchors.values(), key=lambda a: str(a["anchor_id"])),
        refused=refused,
        raw_nodes=raw_nodes,
    )


def _min(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)

"""Events siyu itself emits about a known customer (loyalty, fission, messaging) and whom to send
them as.

Such an event names its customer by a sender (userId or anonymousId, under a source), like any
other: the pipeline derives a provisional customer from the sender and One-ID later points the
event at the customer the sender belongs to. Sent under the customer's *own* sender (the anchor
whose provisional customer is the customer itself, which every resolved customer has: the
surviving id of a merge is one of its members' provisional ids), both land on the customer at
once. Sent under another of its identifiers, the pipeline stored the event on the merged-away
provisional customer and re-created that customer's row, until the background resolver moved
them: after the 50K demo 115,740 of 143,050 loyalty events sat on 24,241 such rows, and
resolving them took 68 s; at 1M it was the bulk of ``siyu serve``'s first minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from siyu.collect.pipeline import Pipeline


@dataclass(frozen=True)
class Sender:
    """Who an event is sent as: a source's userId, else an anonymousId."""

    source_id: str | None
    user_id: str | None
    anonymous_id: str | None

    def fields(self) -> dict[str, str]:
        """The message's identity field (Segment: userId wins over anonymousId)."""
        if self.user_id:
            return {"userId": self.user_id}
        return {"anonymousId": self.anonymous_id or ""}


def subject_join(customer_column: str, only: str = "") -> str:
    """LEFT JOINs adding ``subj_*`` columns for :func:`sender_of` to a query with a
    ``customer_id`` column ``customer_column`` and a ``:ws`` parameter: one set-based pass over
    the workspace's anchors, however many customers the query has. ``only`` narrows the anchors
    read (an SQL condition on ``a.customer_id``) when the query is about a few customers: a
    click or one referral must not sort a million customers' anchors."""
    return f"""
        LEFT JOIN (
            SELECT a.customer_id AS own_customer_id, a.source_id AS own_source_id,
                   a.user_id AS own_user_id, a.anonymous_id AS own_anonymous_id,
                   row_number() OVER (
                       PARTITION BY a.customer_id
                       ORDER BY CASE WHEN a.user_id IS NULL THEN 1 ELSE 0 END,
                                a.source_id, a.user_id, a.anonymous_id) AS own_pick
            FROM identity_anchors a
            WHERE a.workspace_id = :ws AND a.provisional_id = a.customer_id {only}
        ) subj_own ON subj_own.own_customer_id = {customer_column} AND subj_own.own_pick = 1
        LEFT JOIN (
            SELECT customer_id AS row_customer_id, user_id AS row_user_id,
                   anonymous_id AS row_anonymous_id
            FROM customers WHERE workspace_id = :ws
        ) subj_row ON subj_row.row_customer_id = {customer_column}
    """


SUBJECT_COLUMNS = (
    "subj_own.own_customer_id AS subj_own_customer, subj_own.own_source_id AS subj_source_id, "
    "subj_own.own_user_id AS subj_user_id, subj_own.own_anonymous_id AS subj_anonymous_id, "
    "subj_row.row_user_id AS subj_row_user_id, subj_row.row_anonymous_id AS subj_row_anonymous_id"
)
"""The columns :func:`subject_join` adds, for the SELECT list."""


def sender_of(customer_id: str, row: Mapping[str, Any]) -> Sender:
    """The sender of an event about ``customer_id`` from a row with :data:`SUBJECT_COLUMNS`
    (the ``subj_*`` keys are removed from a mutable row so they do not become properties).

    The customer's own anchor when One-ID has resolved it; else the customer row's userId or
    anonymousId (before One-ID the row *is* its sender's provisional customer); else an
    anonymousId naming the customer id.
    """
    values = {k: row[k] for k in list(row) if k.startswith("subj_")}
    if isinstance(row, dict):
        for key in values:
            del row[key]
    if values.get("subj_own_customer"):
        return Sender(values["subj_source_id"], values["subj_user_id"], values["subj_anonymous_id"])
    user_id = values.get("subj_row_user_id")
    if user_id:
        return Sender(None, user_id, None)
    return Sender(None, None, values.get("subj_row_anonymous_id") or f"siyu:{customer_id}")


def senders_of(
    conn: sa.Connection, workspace_id: str, customer_ids: Sequence[str]
) -> dict[str, Sender]:
    """The sender of each customer in ``customer_ids`` (a few: a click, an unsubscribe)."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return {}
    query = sa.text(
        f"""
        SELECT w.customer_id, {SUBJECT_COLUMNS}
        FROM (SELECT customer_id FROM customers
              WHERE workspace_id = :ws AND customer_id IN :ids
              UNION SELECT customer_id FROM identity_anchors
              WHERE workspace_id = :ws AND customer_id IN :ids) w
        {subject_join("w.customer_id", "AND a.customer_id IN :ids")}
        """
    ).bindparams(sa.bindparam("ids", expanding=True))
    found = {
        str(r["customer_id"]): sender_of(str(r["customer_id"]), dict(r))
        for r in conn.execute(query, {"ws": workspace_id, "ids": wanted}).mappings()
    }
    return {c: found.get(c, Sender(None, None, f"siyu:{c}")) for c in wanted}


def ingest_as(
    pipeline: Pipeline,
    sent: Iterable[tuple[Sender, dict[str, Any]]],
    *,
    origin: str,
    received_at: datetime | None = None,
) -> int:
    """Ingest each message under its sender, one part per source (a chunk has one source), all
    in one pipeline run; return how many events were stored."""
    from siyu.collect.pipeline import Part

    by_source: dict[str | None, list[dict[str, Any]]] = {}
    for sender, message in sent:
        by_source.setdefault(sender.source_id, []).append({**message, **sender.fields()})
    parts = [
        Part(by_source[source_id], source_id, origin)
        for source_id in sorted(by_source, key=lambda s: s or "")
    ]
    return pipeline.ingest_parts(parts, received_at=received_at).stored

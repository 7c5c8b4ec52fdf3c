"""Why a customer is who it is: its identifiers, the evidence linking them, refused links, audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from siyu.errors import NotFound
from siyu.identity import tables as t
from siyu.store import schema


@dataclass(frozen=True)
class Explanation:
    customer_id: str
    identifiers: list[dict[str, Any]]
    links: list[dict[str, Any]]
    """Evidence: two identifiers seen together in ``message_id`` under ``rule``."""
    conflicts: list[dict[str, Any]]
    """Links refused by a rule (and values refused) that touch this customer's identifiers."""
    audit: list[dict[str, Any]]


def explain(conn: sa.Connection, workspace_id: str, customer: str) -> Explanation:
    """Explain a customer id, or the customer holding an identifier given as 'kind:value'."""
    i = t.identities
    customer_id = customer
    if ":" in customer:
        from siyu.identity.graph import parse_identifier

        kind, value = parse_identifier(customer)
        found = conn.execute(
            sa.select(i.c.customer_id).where(
                i.c.workspace_id == workspace_id, i.c.kind == kind, i.c.value == value
            )
        ).scalar()
        customer_id = str(found) if found else customer
    identifiers = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(i.c.kind, i.c.value, i.c.source_id, i.c.first_seen_at, i.c.last_seen_at)
            .where(i.c.workspace_id == workspace_id, i.c.customer_id == customer_id)
            .order_by(i.c.kind, i.c.value)
        )
    ]
    if not identifiers:
        raise NotFound(
            f"No identities for customer {customer!r}.",
            hint="Run 'siyu identity resolve' first, or check the customer id.",
        )
    params = {"ws": workspace_id, "c": customer_id}
    mine = "SELECT kind, value FROM identities WHERE workspace_id = :ws AND customer_id = :c"
    links = [
        dict(r._mapping)
        for r in conn.execute(
            sa.text(
                "SELECT l.kind_a, l.value_a, l.kind_b, l.value_b, l.message_id, l.rule, l.seen_at "
                f"FROM identity_links l JOIN ({mine}) m ON m.kind = l.kind_a "
                "AND m.value = l.value_a WHERE l.workspace_id = :ws ORDER BY l.seen_at, "
                "l.kind_a, l.value_a, l.kind_b, l.value_b"
            ),
            params,
        )
    ]
    links += [
        dict(r._mapping)
        for r in conn.execute(
            sa.text(
                "SELECT l.kind_a, l.value_a, l.kind_b, l.value_b, l.message_id, l.rule, l.seen_at "
                f"FROM identity_links l JOIN ({mine}) m ON m.kind = l.kind_b "
                "AND m.value = l.value_b WHERE l.workspace_id = :ws AND NOT EXISTS "
                f"(SELECT 1 FROM ({mine}) m2 WHERE m2.kind = l.kind_a AND m2.value = l.value_a) "
                "ORDER BY l.seen_at"
            ),
            params,
        )
    ]
    conflicts = [
        dict(r._mapping)
        for r in conn.execute(
            sa.text(
                "SELECT c.kind, c.value, c.other_kind, c.other_value, c.rule, c.reason, "
                f"c.message_id, c.status FROM identity_conflicts c JOIN ({mine}) m "
                "ON (m.kind = c.kind AND m.value = c.value) "
                "OR (m.kind = c.other_kind AND m.value = c.other_value) "
                "WHERE c.workspace_id = :ws ORDER BY c.rule, c.kind, c.value"
            ),
            params,
        )
    ]
    a = t.identity_audit
    audit = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(a.c.action, a.c.customer_id, a.c.customers, a.c.rule, a.c.recorded_at)
            .where(a.c.workspace_id == workspace_id, a.c.customer_id == customer_id)
            .order_by(a.c.recorded_at)
        )
    ]
    return Explanation(customer_id, identifiers, links, conflicts, audit)


@dataclass(frozen=True)
class Outcome:
    """What a resolution left, counted the way the rest of siyu counts (tiers, scores, tags)."""

    customers: int
    """Customer records of the workspace."""
    standalone: int
    """Identifiers on no customer's record: kept apart from everyone by a merge rule (a store
    tablet's browser id seen with several shoppers) and never a sender of their own. The
    graph gives each its own group, so the resolver's count of groups includes them."""


def outcome(conn: sa.Connection, workspace_id: str) -> Outcome:
    """Count the workspace's customer records and the identifiers on none of them."""
    c, i = schema.customers, t.identities
    customers = conn.execute(
        sa.select(sa.func.count()).select_from(c).where(c.c.workspace_id == workspace_id)
    ).scalar_one()
    has_record = (
        sa.select(c.c.customer_id)
        .where(c.c.workspace_id == workspace_id, c.c.customer_id == i.c.customer_id)
        .exists()
    )
    standalone = conn.execute(
        sa.select(sa.func.count())
        .select_from(i)
        .where(i.c.workspace_id == workspace_id, ~has_record)
    ).scalar_one()
    return Outcome(int(customers), int(standalone))

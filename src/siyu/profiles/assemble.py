"""The golden record of one customer, assembled from registered section providers.

Each section (traits, identifiers, consents, orders, events, tiers, tags, scores, and whatever
other slices add: points, membership, journeys) is a function registered under
``registry.profile_sections``: ``fn(request) -> JSON-able value or None`` (None leaves the section
out). The profile is computed when asked for, from the tables the records already live in, so it
is never stale after a merge or a split and needs no second copy to keep in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from siyu.errors import NotFound
from siyu.registry import registry
from siyu.store import schema


@dataclass(frozen=True)
class ProfileRequest:
    """What a section provider gets: an open connection and whose profile is being built."""

    conn: sa.Connection
    workspace_id: str
    customer_id: str
    recent: int = 20
    """How many recent orders and events list sections return."""
    trait_priority: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Per trait, sources (name or kind) in priority order (the ``profile_trait_priority``
    setting)."""


def build_profile(request: ProfileRequest) -> dict[str, Any]:
    """The customer's row, then one key per section that has something to say."""
    c = schema.customers
    row = (
        request.conn.execute(
            sa.select(
                c.c.customer_id,
                c.c.country,
                c.c.language,
                c.c.timezone,
                c.c.currency,
                c.c.first_seen_at,
                c.c.last_seen_at,
                c.c.updated_at,
            ).where(
                c.c.workspace_id == request.workspace_id, c.c.customer_id == request.customer_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(
            f"No customer {request.customer_id!r} in this workspace.",
            hint="Look the customer up by an identifier (GET /api/customers/lookup?email=...).",
        )
    profile: dict[str, Any] = {
        k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()
    }
    for name, provider in registry.profile_sections.items():
        value = provider(request)
        if value is not None:
            profile[name] = value
    return profile


def load_profile(
    conn: sa.Connection,
    workspace_id: str,
    customer: str,
    *,
    recent: int = 20,
    trait_priority: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The profile of a customer given as an id (merged ids follow), kind:value, email or phone."""
    from siyu.profiles.lookup import find_customer

    customer_id = find_customer(conn, workspace_id, customer)
    request = ProfileRequest(conn, workspace_id, customer_id, recent, dict(trait_priority or {}))
    return build_profile(request)

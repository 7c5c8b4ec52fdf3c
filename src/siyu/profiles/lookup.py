"""Finding a customer: by id (following merges), or by any identifier, normalised by its kind.

``+6281234567890`` and ``Ana@Example.com`` are read like the identity graph reads them (through
the identifier registry), so the operator types what they have, not the stored spelling.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from siyu.errors import InvalidInput, NotFound
from siyu.identity import InvalidIdentifier, get_kind, is_blocked
from siyu.identity.tables import identities, identity_conflicts, identity_customer_archive
from siyu.registry import registry
from siyu.store import schema

_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{6,}$")


def workspace_region(conn: sa.Connection, workspace_id: str) -> str | None:
    w = schema.workspaces
    found = conn.execute(
        sa.select(w.c.default_region).where(w.c.workspace_id == workspace_id)
    ).scalar()
    return str(found) if found else None


def normalise_identifier(kind: str, value: str, *, region: str | None = None) -> tuple[str, str]:
    """(node kind, normalised value) as the graph stores it; InvalidInput saying why not."""
    if kind not in registry.identifier_kinds:
        known = ", ".join(registry.identifier_kinds.names())
        raise InvalidInput(
            f"Unknown identifier kind {kind!r}.", hint=f"Use one of: {known}.", field=kind
        )
    spec = get_kind(kind)
    source = None
    if spec.namespace_by_source:
        source, sep, rest = value.partition(":")
        if not sep or not rest:
            raise InvalidInput(
                f"A {kind} is only unique within its source: {value!r} names none.",
                hint=f"Write it as source:value, e.g. {kind}=amazon:A1B2C3.",
                field=kind,
            )
        value = rest
    normalised = spec.normalise(value, region=region, source=source)
    return spec.same_values_as or spec.name, normalised


def customer_by_identifier(conn: sa.Connection, workspace_id: str, kind: str, value: str) -> str:
    """The customer holding an identifier; NotFound when no customer has it."""
    region = workspace_region(conn, workspace_id)
    node_kind, normalised = normalise_identifier(kind, value, region=region)
    if kind == "email" and _is_amazon_relay(value, region):
        # The graph keeps relay addresses as kind amazon_buyer (they are not the buyer's own
        # mailbox), but an operator looking one up has it as an email, e.g. from the order.
        node_kind, normalised = normalise_identifier("amazon_buyer", value, region=region)
    i = identities
    found = conn.execute(
        sa.select(i.c.customer_id).where(
            i.c.workspace_id == workspace_id, i.c.kind == node_kind, i.c.value == normalised
        )
    ).scalar()
    if found is None:
        pattern = is_blocked(node_kind, normalised)
        if pattern is not None:
            raise InvalidInput(
                f"The {node_kind} {normalised!r} is a blocked placeholder (pattern {pattern!r}): "
                "it never identifies a customer.",
                hint="Look the customer up by another identifier or by customer id.",
                field=kind,
            )
        raise NotFound(
            f"No customer has the {node_kind} {normalised!r}.",
            hint="Check the value, or run 'siyu identity resolve' if it was ingested recently.",
        )
    if current_customer_id(conn, workspace_id, str(found)) is None:
        raise NotFound(
            f"No customer profile holds the {node_kind} {normalised!r}: "
            f"{_kept_apart_reason(conn, workspace_id, node_kind, normalised)}.",
            hint=f"'siyu identity explain {found}' (GET /api/customers/{found}/explain) shows "
            "whom it was seen with and the rule that kept it apart.",
        )
    return str(found)


def _kept_apart_reason(conn: sa.Connection, workspace_id: str, kind: str, value: str) -> str:
    """Why an identifier stands alone: the merge rule that refused its links (a store tablet's
    browser id seen with many shoppers), as One-ID recorded it."""
    c = identity_conflicts
    reason = conn.execute(
        sa.select(c.c.reason)
        .where(
            c.c.workspace_id == workspace_id,
            sa.or_(
                sa.and_(c.c.kind == kind, c.c.value == value),
                sa.and_(c.c.other_kind == kind, c.c.other_value == value),
            ),
        )
        .order_by(c.c.created_at.desc())
        .limit(1)
    ).scalar()
    return str(reason) if reason else "One-ID links it to no customer record"


def _is_amazon_relay(value: str, region: str | None) -> bool:
    try:
        get_kind("amazon_buyer").normalise(value, region=region)
    except InvalidIdentifier:
        return False
    return True


def current_customer_id(conn: sa.Connection, workspace_id: str, customer_id: str) -> str | None:
    """The id itself when it is a customer, its survivor when it was merged away, else None."""
    c, arc = schema.customers, identity_customer_archive
    seen: set[str] = set()
    current = customer_id
    while current not in seen:
        seen.add(current)
        exists = conn.execute(
            sa.select(c.c.customer_id).where(
                c.c.workspace_id == workspace_id, c.c.customer_id == current
            )
        ).scalar()
        if exists is not None:
            return current
        into = conn.execute(
            sa.select(arc.c.merged_into).where(
                arc.c.workspace_id == workspace_id, arc.c.customer_id == current
            )
        ).scalar()
        if into is None:
            return None
        current = str(into)
    return None


def guess_kind(text: str) -> str | None:
    """The kind a bare value most likely is ('@' -> email, digits -> phone), else None."""
    if "@" in text:
        return "email"
    if _PHONE_LIKE.match(text.strip()):
        return "phone"
    return None


def find_customer(conn: sa.Connection, workspace_id: str, text: str) -> str:
    """A customer from what an operator typed: a customer id, 'kind:value', an email or a phone."""
    text = text.strip()
    if not text:
        raise InvalidInput(
            "No customer given.", hint="Pass a customer id, an email, a phone or kind:value."
        )
    found = current_customer_id(conn, workspace_id, text)
    if found is not None:
        return found
    kind, sep, value = text.partition(":")
    if sep and kind in registry.identifier_kinds:
        return customer_by_identifier(conn, workspace_id, kind, value)
    guessed = guess_kind(text)
    if guessed is None:
        raise NotFound(
            f"No customer {text!r}.",
            hint="Pass a customer id (cus_...), an email, a phone number, or kind:value "
            "such as instagram:123.",
        )
    return customer_by_identifier(conn, workspace_id, guessed, text)

"""Loyalty and referral attributes of the tag language (``points_balance >= 1000``).

Read from the loyalty slice's ledger, member tiers and paid memberships and from the fission
slice's referrals, group buys and assists, each reduced to one row per customer by one
``group_by`` and left-joined like the other attribute families. A workspace that uses neither
programme has empty tables: counts are 0, flags false, the member tier null, and no tag over
them matches.

- ``points_balance``: the sum of the customer's ledger rows created by ``as_of``;
- ``member_tier``: the loyalty tier held now (``tier_states``; the programme's tier names);
- ``paid_member``: a paid membership that is active at ``as_of``;
- ``referred``: the customer signed up through a referral that was not rejected;
- ``successful_invites``: referrals the customer made that qualified or were rewarded;
- ``group_buys_joined``: group-buy seats taken and not voided;
- ``assists_given``: friend assists the customer gave.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from siyu.compute import WorkspaceTables
from siyu.segments.lang.schema import AttrType

PROGRAMME_SCHEMA: Mapping[str, AttrType] = {
    "points_balance": "number",
    "member_tier": "string",
    "paid_member": "boolean",
    "referred": "boolean",
    "successful_invites": "number",
    "group_buys_joined": "number",
    "assists_given": "number",
}

#: Value of each attribute for a customer with no row in its table.
EMPTY: Mapping[str, Any] = {
    "points_balance": 0,
    "member_tier": None,
    "paid_member": False,
    "referred": False,
    "successful_invites": 0,
    "group_buys_joined": 0,
    "assists_given": 0,
}


def programme_parts(t: WorkspaceTables, as_of: datetime) -> list[ir.Table]:
    """Per-customer tables (``customer_id`` + some of :data:`PROGRAMME_SCHEMA`), to left-join."""
    at = ibis.literal(as_of)
    ledger = t.points_ledger.filter(lambda p: p.created_at <= at)
    points = ledger.group_by("customer_id").aggregate(
        points_balance=ledger.amount.cast("int64").sum()
    )
    states = t.tier_states.filter(lambda s: s.since <= at)
    tiers = states.select("customer_id", member_tier=states.tier)
    m = t.memberships
    paid = (
        m.filter((m.status == "active") & (m.started_at <= at) & (m.ends_at > at))
        .select("customer_id")
        .distinct()
        .mutate(paid_member=ibis.literal(True))
    )
    r = t.referrals.filter(lambda x: x.created_at <= at)
    referred = (
        r.filter(r.state != "rejected")
        .select(customer_id=r.friend_id)
        .distinct()
        .mutate(referred=ibis.literal(True))
    )
    good = r.filter(r.state.isin(["qualified", "rewarded"]))
    invites = good.group_by(customer_id=good.referrer_id).aggregate(successful_invites=good.count())
    g = t.group_buy_members.filter(lambda x: (x.joined_at <= at) & (x.status != "voided"))
    groups = g.group_by("customer_id").aggregate(group_buys_joined=g.count())
    a = t.assists.filter(lambda x: x.created_at <= at)
    helped = a.group_by(customer_id=a.helper_id).aggregate(assists_given=a.count())
    return [points, tiers, paid, referred, invites, groups, helped]


def fill_programme(table: ir.Table) -> ir.Table:
    """Replace the NULLs of customers absent from a programme table with :data:`EMPTY`."""
    return table.mutate(
        **{name: table[name].fill_null(value) for name, value in EMPTY.items() if value is not None}
    )


__all__ = ["EMPTY", "PROGRAMME_SCHEMA", "fill_programme", "programme_parts"]

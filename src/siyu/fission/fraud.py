"""Fraud rules of referrals, each one set-based SQL over the event log.

Fingerprints compared between referrer and friend (any shared value rejects the referral):

- ``shared_device``: ``context.device.id`` of any event (Segment's device id);
- ``shared_payment``: ``properties.payment_fingerprint`` of any event (Order Completed: a hash
  of the card or wallet the store's payment provider returns, e.g. Stripe's card fingerprint);
- ``shared_address``: the shipping address of any event (``properties.shipping_address``) or the
  address trait of an identify (``traits.address``), normalised to lower-case letters and digits
  of street (``street``, ``line1`` or ``address1``) plus postcode (``postalCode``,
  ``postal_code`` or ``zip``).

Self-referral after identity resolution is the referrer and the friend being one customer once
One-ID has merged them (the merge follower re-keys ``referrer_id`` and ``friend_id``).
Bursts: more referred first orders than the programme's ``burst_limit`` from one IP
(``context.ip`` of the Order Completed event) within ``burst_hours`` of each other are flagged.
"""

from __future__ import annotations

import sqlalchemy as sa


def _street(doc: str) -> str:
    parts = [f"{doc}->>'{k}'" for k in ("street", "line1", "address1")]
    codes = [f"{doc}->>'{k}'" for k in ("postalCode", "postal_code", "zip")]
    return (
        f"regexp_replace(lower(coalesce({', '.join(parts)}, '') || '|' || "
        f"coalesce({', '.join(codes)}, '')), '[^a-z0-9|]', '', 'g')"
    )


def _fingerprints(people: str) -> str:
    """SQL of (customer_id, reason, value) for the customers in the ``people`` subquery."""
    selects = [
        ("shared_device", "e.context->'device'->>'id'"),
        ("shared_payment", "e.properties->>'payment_fingerprint'"),
        ("shared_address", _street("e.properties->'shipping_address'")),
        ("shared_address", _street("e.traits->'address'")),
    ]
    return " UNION ALL ".join(
        f"SELECT e.customer_id, '{reason}' AS reason, {expr} AS value FROM events e "
        f"WHERE e.workspace_id = :ws AND e.customer_id IN ({people})"
        for reason, expr in selects
    )


def shared_fingerprints(conn: sa.Connection, workspace_id: str) -> dict[str, str]:
    """referral_id -> reason, for pending referrals whose two sides share a fingerprint."""
    people = (
        "SELECT referrer_id FROM referrals WHERE workspace_id = :ws AND state = 'pending' "
        "UNION SELECT friend_id FROM referrals WHERE workspace_id = :ws AND state = 'pending'"
    )
    sql = f"""
        WITH fp AS (
            SELECT DISTINCT customer_id, reason, value FROM ({_fingerprints(people)}) x
            WHERE value IS NOT NULL AND value <> '' AND value <> '|'
        )
        SELECT r.referral_id, min(a.reason) AS reason
        FROM referrals r
        JOIN fp a ON a.customer_id = r.referrer_id
        JOIN fp b ON b.customer_id = r.friend_id AND b.reason = a.reason AND b.value = a.value
        WHERE r.workspace_id = :ws AND r.state = 'pending' AND r.referrer_id <> r.friend_id
        GROUP BY r.referral_id
    """
    return {str(k): str(v) for k, v in conn.execute(sa.text(sql), {"ws": workspace_id})}


def ip_bursts(conn: sa.Connection, workspace_id: str, limit: int, hours: int) -> list[str]:
    """Qualified, unflagged referrals whose first order's IP placed more than ``limit`` referred
    first orders within ``hours`` of it (itself included).

    A window over (IP, order time) rather than a self-join: one sort, whatever the planner
    believes about the rows the run just changed (a nested self-join took seconds on
    PostgreSQL right after a large run, before statistics caught up)."""
    span = f"INTERVAL '{int(hours)} hours'"
    sql = f"""
        WITH w AS (
            SELECT referral_id, state, flag,
                   count(*) OVER (
                       PARTITION BY order_ip ORDER BY order_placed_at
                       RANGE BETWEEN {span} PRECEDING AND {span} FOLLOWING
                   ) AS n
            FROM referrals
            WHERE workspace_id = :ws AND order_ip IS NOT NULL AND order_id IS NOT NULL
        )
        SELECT referral_id FROM w
        WHERE state = 'qualified' AND flag IS NULL AND n > :limit
        ORDER BY referral_id
    """
    params = {"ws": workspace_id, "limit": limit}
    return [str(r[0]) for r in conn.execute(sa.text(sql), params)]

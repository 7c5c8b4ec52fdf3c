"""Group buys (拼团): campaigns, groups opened by a leader, friends joining by link, settlement.

A campaign sets the product, group size, price (or discount off the list price) and time limit.
Every member pays the campaign's first-tier price when joining (siyu records it; the store takes
the payment). A plain campaign has one tier: the group completes the moment its last seat is
taken, and every member's order is confirmed at the group price. A tiered campaign (price falls
as more join, e.g. 2 -> 80, 3 -> 70, 5 -> 60) stays open until its last seat is taken or its time
runs out, then confirms at the tier reached and owes each member the difference. A group that
runs out of time below its smallest tier is voided and every member is owed a full refund.

siyu is not the payment system: ``Group Buy Completed`` and ``Group Buy Expired`` events carry
each member's confirmed price and the refund owed; the store integration acts on them.

Seats: a member row is keyed by (group, seat) with seat in 1..size, and a join locks the group
row (``FOR UPDATE`` on PostgreSQL, the write lock on DuckDB) before taking seat members+1, so the
last free place cannot be taken twice even by simultaneous joins.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.fission.common import for_update, new_id, require_customer, utcnow, writing
from siyu.fission.tables import group_buy_campaigns, group_buy_members, group_buys
from siyu.money import require_currency
from siyu.store.database import Database

CENT = Decimal("0.01")


class GroupBuyRefused(Conflict):
    """A join or open that the group's state does not allow (full, closed, expired, twice)."""

    code = "group_buy_refused"
    default_hint = "Open a new group of the campaign, or join another open group."


def _tiers(
    list_price: Decimal,
    group_size: int,
    price: Decimal | None,
    discount_pct: Decimal | None,
    tiers: list[dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """Validated tiers [{members, price}] by increasing members and decreasing price."""
    if tiers:
        if price is not None or discount_pct is not None:
            raise InvalidInput(
                "Give either tiers or one price/discount, not both.",
                hint="A tiered campaign sets the price of each tier.",
                field="tiers",
            )
        members: list[int] = []
        prices: list[Decimal] = []
        for i, t in enumerate(tiers):
            try:
                members.append(int(t["members"]))
                prices.append(Decimal(str(t["price"])))
            except (KeyError, TypeError, ValueError, ArithmeticError):
                raise InvalidInput(
                    f"tiers[{i}] must be {{'members': n, 'price': p}}.",
                    hint='Example: [{"members": 2, "price": 80}, {"members": 3, "price": 70}].',
                    field=f"tiers[{i}]",
                ) from None
        if members != sorted(set(members)) or members[0] < 2 or members[-1] > group_size:
            raise InvalidInput(
                f"Tier sizes {members} must increase, start at 2 or more and end at most at "
                f"the group size {group_size}.",
                field="tiers",
            )
        if prices != sorted(set(prices), reverse=True) or prices[-1] <= 0:
            raise InvalidInput(
                f"Tier prices {[str(p) for p in prices]} must be positive and fall as tiers grow.",
                field="tiers",
            )
        return [{"members": n, "price": str(p)} for n, p in zip(members, prices, strict=True)]
    if (price is None) == (discount_pct is None):
        raise InvalidInput(
            "Give the group price or the discount in percent (one of them).",
            hint="e.g. --price 69.90 or --discount 30 (30% off the list price).",
            field="price",
        )
    if discount_pct is not None:
        if not Decimal(0) < discount_pct < Decimal(100):
            raise InvalidInput("discount must be between 0 and 100 (percent).", field="discount")
        price = (list_price * (100 - discount_pct) / 100).quantize(CENT)
    assert price is not None
    if not Decimal(0) < price <= list_price:
        raise InvalidInput(
            f"The group price {price} must be positive and at most the list price {list_price}.",
            field="price",
        )
    return [{"members": group_size, "price": str(price)}]


def create_campaign(
    conn: sa.Connection,
    workspace_id: str,
    *,
    name: str,
    product_id: str,
    currency: str,
    list_price: Decimal,
    group_size: int,
    price: Decimal | None = None,
    discount_pct: Decimal | None = None,
    tiers: list[dict[str, Any]] | None = None,
    time_limit_hours: float = 24,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    campaign_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    if not 2 <= group_size <= 100:
        raise InvalidInput("group_size must be between 2 and 100.", field="group_size")
    if list_price <= 0:
        raise InvalidInput("list_price must be positive.", field="list_price")
    if not 0 < time_limit_hours <= 24 * 30:
        raise InvalidInput(
            "time_limit_hours must be more than 0 and at most 720 (30 days).",
            field="time_limit_hours",
        )
    starts = starts_at or now
    if ends_at is not None and ends_at <= starts:
        raise InvalidInput("ends_at must be after starts_at.", field="ends_at")
    cid = campaign_id or new_id("gbc")
    row: dict[str, Any] = {
        "workspace_id": workspace_id,
        "campaign_id": cid,
        "name": name,
        "product_id": product_id,
        "currency": require_currency(currency),
        "list_price": list_price,
        "group_size": group_size,
        "tiers": _tiers(list_price, group_size, price, discount_pct, tiers),
        "time_limit_seconds": int(time_limit_hours * 3600),
        "starts_at": starts,
        "ends_at": ends_at,
        "created_at": now,
    }
    exists = conn.execute(
        sa.select(sa.func.count())
        .select_from(group_buy_campaigns)
        .where(
            group_buy_campaigns.c.workspace_id == workspace_id,
            group_buy_campaigns.c.campaign_id == cid,
        )
    ).scalar_one()
    if exists:
        raise Conflict(f"Group-buy campaign '{cid}' exists already.")
    conn.execute(group_buy_campaigns.insert().values(**row))
    return get_campaign(conn, workspace_id, cid)


def get_campaign(conn: sa.Connection, workspace_id: str, campaign_id: str) -> dict[str, Any]:
    c = group_buy_campaigns
    row = (
        conn.execute(
            sa.select(c).where(c.c.workspace_id == workspace_id, c.c.campaign_id == campaign_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(
            f"No group-buy campaign '{campaign_id}'.",
            hint="List them with 'siyu groupbuys campaigns'.",
        )
    out = dict(row)
    out.pop("workspace_id")
    return out


def list_campaigns(conn: sa.Connection, workspace_id: str) -> list[dict[str, Any]]:
    c = group_buy_campaigns
    rows = conn.execute(
        sa.select(c.c.campaign_id).where(c.c.workspace_id == workspace_id).order_by(c.c.created_at)
    ).scalars()
    return [get_campaign(conn, workspace_id, r) for r in rows]


def price_for(tiers: list[dict[str, Any]], members: int) -> Decimal | None:
    """The price of the highest tier reached by ``members`` (None: below the smallest tier)."""
    reached = [Decimal(str(t["price"])) for t in tiers if int(t["members"]) <= members]
    return reached[-1] if reached else None


def _member_rows(conn: sa.Connection, workspace_id: str, group_id: str) -> list[dict[str, Any]]:
    m = group_buy_members
    return [
        {k: v for k, v in r.items() if k not in ("workspace_id", "member_key")}
        for r in conn.execute(
            sa.select(m)
            .where(m.c.workspace_id == workspace_id, m.c.group_id == group_id)
            .order_by(m.c.seat)
        ).mappings()
    ]


def get_group(conn: sa.Connection, workspace_id: str, group_id: str) -> dict[str, Any]:
    g = group_buys
    row = (
        conn.execute(sa.select(g).where(g.c.workspace_id == workspace_id, g.c.group_id == group_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(
            f"No group '{group_id}'.", hint="List groups with 'siyu groupbuys list --campaign ID'."
        )
    out = dict(row)
    out.pop("workspace_id")
    out["member_list"] = _member_rows(conn, workspace_id, group_id)
    return out


def list_groups(
    conn: sa.Connection,
    workspace_id: str,
    *,
    campaign_id: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    g = group_buys
    q = sa.select(g).where(g.c.workspace_id == workspace_id)
    if campaign_id:
        q = q.where(g.c.campaign_id == campaign_id)
    if status:
        q = q.where(g.c.status == status)
    return [
        {k: v for k, v in r.items() if k != "workspace_id"}
        for r in conn.execute(q.order_by(g.c.opened_at, g.c.group_id)).mappings()
    ]


def _close(
    conn: sa.Connection, workspace_id: str, group_id: str, final: Decimal | None, now: datetime
) -> str:
    """Complete the group at ``final`` (or void it when None); settle every member."""
    g, m = group_buys, group_buy_members
    status = "completed" if final is not None else "expired"
    done = conn.execute(
        g.update()
        .where(g.c.workspace_id == workspace_id, g.c.group_id == group_id, g.c.status == "open")
        .values(status=status, closed_at=now, final_price=final)
    ).rowcount
    if not done:
        return "unchanged"
    where = (m.c.workspace_id == workspace_id, m.c.group_id == group_id)
    if final is None:
        conn.execute(
            m.update()
            .where(*where)
            .values(status="voided", refund_amount=m.c.paid_price, closed_at=now)
        )
    else:
        conn.execute(
            m.update()
            .where(*where)
            .values(
                status="confirmed",
                confirmed_price=final,
                refund_amount=m.c.paid_price - final,
                closed_at=now,
            )
        )
    return status


def _seat(
    db: Database,
    workspace_id: str,
    group_id: str,
    customer_id: str,
    order_id: str | None,
    now: datetime,
    conn: sa.Connection,
) -> dict[str, Any]:
    g, m = group_buys, group_buy_members
    group = conn.execute(
        for_update(
            db, sa.select(g).where(g.c.workspace_id == workspace_id, g.c.group_id == group_id)
        )
    ).first()
    if group is None:
        raise NotFound(f"No group '{group_id}'.", hint="Check the group id in the invite link.")
    if group.status != "open" or group.expires_at <= now:
        state = group.status if group.status != "open" else "expired"
        raise GroupBuyRefused(f"Group '{group_id}' is {state}; it takes no more members.")
    if group.members >= group.size:
        raise GroupBuyRefused(f"Group '{group_id}' is full ({group.size} members).")
    already = conn.execute(
        sa.select(sa.func.count())
        .select_from(m)
        .where(m.c.workspace_id == workspace_id, m.c.group_id == group_id)
        .where(sa.or_(m.c.member_key == customer_id, m.c.customer_id == customer_id))
    ).scalar_one()
    if already:
        raise GroupBuyRefused(f"Customer '{customer_id}' is already in group '{group_id}'.")
    campaign = get_campaign(conn, workspace_id, group.campaign_id)
    seat = int(group.members) + 1
    conn.execute(
        m.insert().values(
            workspace_id=workspace_id,
            group_id=group_id,
            seat=seat,
            customer_id=customer_id,
            member_key=customer_id,
            order_id=order_id,
            paid_price=Decimal(str(campaign["tiers"][0]["price"])),
            currency=campaign["currency"],
            joined_at=now,
            status="joined",
        )
    )
    conn.execute(
        g.update()
        .where(g.c.workspace_id == workspace_id, g.c.group_id == group_id, g.c.members == seat - 1)
        .values(members=seat)
    )
    if seat == group.size:
        _close(conn, workspace_id, group_id, price_for(campaign["tiers"], seat), now)
    return get_group(conn, workspace_id, group_id)


def open_group(
    db: Database,
    workspace_id: str,
    campaign_id: str,
    leader_id: str,
    *,
    order_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The leader opens a group (taking seat 1); friends join by its link."""
    now = now or utcnow()
    with writing(db) as conn:
        leader_id = require_customer(conn, workspace_id, leader_id, "leader_id")
        campaign = get_campaign(conn, workspace_id, campaign_id)
        if campaign["starts_at"] > now or (campaign["ends_at"] and campaign["ends_at"] <= now):
            raise GroupBuyRefused(
                f"Campaign '{campaign_id}' runs from {campaign['starts_at']} to "
                f"{campaign['ends_at'] or 'open end'}; it is not running now.",
                hint="Open groups while the campaign runs.",
            )
        group_id = new_id("grp")
        conn.execute(
            group_buys.insert().values(
                workspace_id=workspace_id,
                group_id=group_id,
                campaign_id=campaign_id,
                leader_id=leader_id,
                status="open",
                size=campaign["group_size"],
                members=0,
                opened_at=now,
                expires_at=now + timedelta(seconds=campaign["time_limit_seconds"]),
                currency=campaign["currency"],
            )
        )
        return _seat(db, workspace_id, group_id, leader_id, order_id, now, conn)


def join_group(
    db: Database,
    workspace_id: str,
    group_id: str,
    customer_id: str,
    *,
    order_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Take the next free seat; the last seat completes the group. Refused when full/closed."""
    now = now or utcnow()
    try:
        with writing(db) as conn:
            customer_id = require_customer(conn, workspace_id, customer_id, "customer_id")
            return _seat(db, workspace_id, group_id, customer_id, order_id, now, conn)
    except sa.exc.IntegrityError:
        # A simultaneous join took the same seat (or the same customer joined twice at once).
        raise GroupBuyRefused(
            f"Another member took the seat in group '{group_id}' at the same moment.",
            hint="Retry: the group may still have a free seat, or be full now.",
        ) from None


def close_due(db: Database, workspace_id: str, *, now: datetime | None = None) -> dict[str, int]:
    """Settle every open group whose time ran out: completed at the tier reached, or expired
    (voided, full refunds owed) below the smallest tier. Idempotent."""
    now = now or utcnow()
    g, c = group_buys, group_buy_campaigns
    counts = {"completed": 0, "expired": 0}
    with writing(db) as conn:
        due = conn.execute(
            for_update(
                db,
                sa.select(g.c.group_id, g.c.members, c.c.tiers)
                .join(
                    c,
                    sa.and_(
                        c.c.workspace_id == g.c.workspace_id, c.c.campaign_id == g.c.campaign_id
                    ),
                )
                .where(
                    g.c.workspace_id == workspace_id, g.c.status == "open", g.c.expires_at <= now
                )
                .order_by(g.c.group_id),
            )
        ).all()
        for group_id, members, tiers in due:
            status = _close(conn, workspace_id, group_id, price_for(tiers, int(members)), now)
            if status in counts:
                counts[status] += 1
    return counts

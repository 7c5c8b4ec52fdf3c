"""Coupons: campaigns, unique non-guessable codes, discounts, limits and redemptions.

A coupon's ``spec`` says what it gives (copied from its campaign when issued, so a later campaign
edit never changes a code already in a customer's hands):

- ``{"amount": 20, "currency": "EUR"}`` or ``{"amounts": {"EUR": 20, "USD": 22}}``: fixed amount
  off, per currency (an order in another currency gets nothing: no silent conversion);
- ``{"percent": 10}`` (optionally ``"max_discount": {"EUR": 30}``);
- ``{"tiers": [{"spend": 100, "save": 10}, {"spend": 200, "save": 25}], "currency": "CNY"}``:
  spend X save Y (满减), the highest tier reached applies;
- ``{"free_shipping": true}``: the shipping amount is the discount.

Redemption at checkout (:func:`redeem_code`) locks the code and its campaign (``FOR UPDATE`` on
PostgreSQL, the write lock on DuckDB) and checks validity, owner, uses per code, per-customer and
global limits before recording; a code can therefore never be used beyond its limits, even by
simultaneous checkouts. Redemptions that happened in a store are recorded from ``Order
Completed`` and ``Coupon Applied`` events by :func:`record_from_events`: they are facts, so one
beyond a limit is kept with status ``over_limit`` rather than lost.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.dialects.postgresql import insert as pg_insert

from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.loyalty.tables import coupon_campaigns, coupon_redemptions, coupons
from siyu.money import require_currency
from siyu.store.database import Database

# Crockford-style alphabet without 0/O, 1/I/L, U: readable aloud, 31 symbols = ~4.95 bits each.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12  # ~59 bits: guessing one live code among a million takes ~2^39 tries


class CouponRefused(Conflict):
    """A code exists but cannot be used now (expired, used up, another customer's, limit)."""

    code = "coupon_refused"
    default_hint = "Check the coupon's validity and limits with 'siyu coupons show CODE'."


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spend: Decimal = Field(gt=0)
    save: Decimal = Field(gt=0)


class CouponSpec(BaseModel):
    """What a coupon gives; exactly one of amount(s), percent, tiers, free_shipping."""

    model_config = ConfigDict(extra="forbid")

    amount: Decimal | None = Field(None, gt=0)
    currency: str | None = None
    amounts: dict[str, Decimal] | None = None
    percent: Decimal | None = Field(None, gt=0, le=100)
    max_discount: dict[str, Decimal] | None = None
    tiers: list[Tier] | None = None
    free_shipping: bool | None = None
    campaign: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CouponSpec:
        kinds = [
            k
            for k, v in (
                ("amount", self.amount if self.amount is not None else self.amounts),
                ("percent", self.percent),
                ("tiers", self.tiers),
                ("free_shipping", self.free_shipping),
            )
            if v
        ]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of amount (+currency) / amounts, percent, tiers (+currency) or "
                f"free_shipping; got {kinds or 'none'}"
            )
        if (self.amount is not None or self.tiers) and self.currency is None:
            raise ValueError("amount and tiers need a currency (ISO 4217, e.g. EUR)")
        if self.currency is not None:
            self.currency = require_currency(self.currency)
        if self.amounts is not None:
            self.amounts = {require_currency(c): v for c, v in self.amounts.items()}
            if any(v <= 0 for v in self.amounts.values()):
                raise ValueError("amounts must be positive")
        if self.tiers:
            spends = [t.spend for t in self.tiers]
            if spends != sorted(set(spends)):
                raise ValueError("tiers must be ordered by increasing spend")
        return self

    @property
    def kind(self) -> str:
        if self.percent is not None:
            return "percent"
        if self.tiers:
            return "spend_save"
        if self.free_shipping:
            return "free_shipping"
        return "fixed"

    def fixed_amounts(self) -> dict[str, Decimal]:
        if self.amounts:
            return dict(self.amounts)
        if self.amount is not None and self.currency:
            return {self.currency: self.amount}
        return {}

    def discount(self, subtotal: Decimal, currency: str, shipping: Decimal = Decimal(0)) -> Decimal:
        """The discount on an order of ``subtotal`` in ``currency`` (0 when it does not apply)."""
        if self.kind == "percent":
            assert self.percent is not None
            value = (subtotal * self.percent / 100).quantize(Decimal("0.01"))
            cap = (self.max_discount or {}).get(currency)
            return min(value, cap) if cap is not None else value
        if self.kind == "free_shipping":
            return shipping
        if self.kind == "spend_save":
            if currency != self.currency:
                return Decimal(0)
            reached = [t.save for t in self.tiers or [] if subtotal >= t.spend]
            return reached[-1] if reached else Decimal(0)
        return min(self.fixed_amounts().get(currency, Decimal(0)), subtotal)

    def describe(self) -> str:
        if self.kind == "percent":
            return f"{self.percent}% off"
        if self.kind == "free_shipping":
            return "free shipping"
        if self.kind == "spend_save":
            steps = ", ".join(f"spend {t.spend} save {t.save}" for t in self.tiers or [])
            return f"{self.currency} {steps}"
        return " / ".join(f"{c} {v} off" for c, v in self.fixed_amounts().items())


def parse_spec(doc: Mapping[str, Any], field: str = "spec") -> CouponSpec:
    try:
        return CouponSpec.model_validate(dict(doc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            f"Coupon {field}{'.' + where if where else ''}: {first['msg']}.",
            hint='Examples: {"amount": 20, "currency": "EUR"}, {"percent": 10}, '
            '{"tiers": [{"spend": 100, "save": 10}], "currency": "CNY"}, {"free_shipping": true}.',
            field=field,
        ) from None


def new_code(prefix: str | None = None) -> str:
    """A random code from the OS's CSPRNG, grouped in fours for reading aloud."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    grouped = "-".join(body[i : i + 4] for i in range(0, CODE_LENGTH, 4))
    return f"{prefix.upper()}-{grouped}" if prefix else grouped


def normalise_code(code: str) -> str:
    return code.strip().upper()


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    spec: CouponSpec
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    per_customer_limit: int | None
    global_limit: int | None


def create_campaign(
    conn: sa.Connection,
    workspace_id: str,
    campaign_id: str,
    *,
    name: str,
    spec: Mapping[str, Any],
    now: datetime,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    valid_days: int | None = None,
    per_customer_limit: int | None = 1,
    global_limit: int | None = None,
) -> Campaign:
    parsed = parse_spec(spec)
    if parsed.campaign:
        raise InvalidInput("A campaign's spec cannot name another campaign.", field="spec")
    for label, value in (
        ("valid_days", valid_days),
        ("per_customer_limit", per_customer_limit),
        ("global_limit", global_limit),
    ):
        if value is not None and value < 1:
            raise InvalidInput(f"{label} must be at least 1, got {value}.", field=label)
    if valid_from and valid_until and valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from.", field="valid_until")
    exists = conn.execute(
        sa.select(coupon_campaigns.c.campaign_id).where(
            coupon_campaigns.c.workspace_id == workspace_id,
            coupon_campaigns.c.campaign_id == campaign_id,
        )
    ).first()
    if exists:
        raise Conflict(
            f"Coupon campaign {campaign_id!r} exists.", hint="Choose another campaign id."
        )
    conn.execute(
        coupon_campaigns.insert().values(
            workspace_id=workspace_id,
            campaign_id=campaign_id,
            name=name,
            spec=parsed.model_dump(mode="json", exclude_none=True),
            valid_from=valid_from,
            valid_until=valid_until,
            valid_days=valid_days,
            per_customer_limit=per_customer_limit,
            global_limit=global_limit,
            created_at=now,
        )
    )
    return get_campaign(conn, workspace_id, campaign_id)


def get_campaign(conn: sa.Connection, workspace_id: str, campaign_id: str) -> Campaign:
    c = coupon_campaigns.c
    row = conn.execute(
        sa.select(coupon_campaigns).where(
            c.workspace_id == workspace_id, c.campaign_id == campaign_id
        )
    ).first()
    if row is None:
        raise NotFound(
            f"No coupon campaign {campaign_id!r}.", hint="List them with 'siyu coupons campaigns'."
        )
    return Campaign(
        row.campaign_id,
        row.name,
        CouponSpec.model_validate(row.spec),
        row.valid_from,
        row.valid_until,
        row.valid_days,
        row.per_customer_limit,
        row.global_limit,
    )


@dataclass(frozen=True)
class Issued:
    code: str
    created: bool
    spec: CouponSpec
    expires_at: datetime | None


def issue(
    db: Database,
    workspace_id: str,
    *,
    key: str,
    now: datetime,
    customer_id: str | None = None,
    campaign_id: str | None = None,
    spec: Mapping[str, Any] | None = None,
    max_uses: int | None = 1,
    prefix: str | None = None,
) -> Issued:
    """Issue a code once per ``key`` (a campaign's terms, or an ad-hoc spec)."""
    if (campaign_id is None) == (spec is None):
        raise InvalidInput("Issue a coupon from either a campaign or a spec, not both.")
    guard = db.write_lock if db.kind == "duckdb" else nullcontext()
    with guard, db.engine.begin() as conn:
        found = _by_key(conn, workspace_id, key)
        if found is not None:
            return found
        valid_from: datetime | None = None
        expires: datetime | None = None
        if campaign_id is not None:
            campaign = get_campaign(conn, workspace_id, campaign_id)
            if campaign.valid_until is not None and campaign.valid_until <= now:
                raise CouponRefused(
                    f"Coupon campaign {campaign_id!r} ended {campaign.valid_until}."
                )
            parsed = campaign.spec
            valid_from, expires = campaign.valid_from, campaign.valid_until
            if campaign.valid_days is not None:
                relative = now + timedelta(days=campaign.valid_days)
                expires = min(expires, relative) if expires else relative
            prefix = prefix or campaign_id[:12]
        else:
            assert spec is not None
            parsed = parse_spec(spec)
        code = new_code(prefix)
        stmt = (
            pg_insert(coupons)
            .values(
                workspace_id=workspace_id,
                code=code,
                campaign_id=campaign_id,
                customer_id=customer_id,
                spec=parsed.model_dump(mode="json", exclude_none=True),
                max_uses=max_uses,
                idempotency_key=key,
                issued_at=now,
                valid_from=valid_from,
                expires_at=expires,
            )
            .on_conflict_do_nothing()
            .returning(coupons.c.code)
        )
        if conn.execute(stmt).first() is None:  # a concurrent issue under the same key won
            again = _by_key(conn, workspace_id, key)
            assert again is not None
            return again
    return Issued(code, True, parsed, expires)


def _by_key(conn: sa.Connection, workspace_id: str, key: str) -> Issued | None:
    row = conn.execute(
        sa.select(coupons.c.code, coupons.c.spec, coupons.c.expires_at).where(
            coupons.c.workspace_id == workspace_id, coupons.c.idempotency_key == key
        )
    ).first()
    if row is None:
        return None
    return Issued(row.code, False, CouponSpec.model_validate(row.spec), row.expires_at)


def _pg(conn: sa.Connection) -> bool:
    """Row locks on PostgreSQL; DuckDB has no FOR UPDATE (its callers hold the write lock)."""
    return conn.dialect.name == "postgresql"


def _coupon(conn: sa.Connection, workspace_id: str, code: str, *, lock: bool) -> Any:
    q = sa.select(coupons).where(
        coupons.c.workspace_id == workspace_id, coupons.c.code == normalise_code(code)
    )
    row = conn.execute(q.with_for_update() if lock and _pg(conn) else q).first()
    if row is None:
        raise NotFound(f"No coupon with code {code!r}.", field="code")
    return row


@dataclass(frozen=True)
class Quote:
    code: str
    discount: Decimal
    currency: str
    description: str


def _check(
    conn: sa.Connection,
    workspace_id: str,
    row: Any,
    customer_id: str | None,
    now: datetime,
    *,
    lock: bool,
) -> Any:
    """Refuse a code that cannot be used now; return the campaign row (or None)."""
    if row.valid_from is not None and now < row.valid_from:
        raise CouponRefused(f"Coupon {row.code} is valid from {row.valid_from}.")
    if row.expires_at is not None and now >= row.expires_at:
        raise CouponRefused(f"Coupon {row.code} expired at {row.expires_at}.")
    if row.customer_id is not None and customer_id != row.customer_id:
        raise CouponRefused(f"Coupon {row.code} belongs to another customer.")
    r = coupon_redemptions.c
    used = _count(conn, workspace_id, r.code == row.code)
    if row.max_uses is not None and used >= row.max_uses:
        raise CouponRefused(f"Coupon {row.code} has been used {used} of {row.max_uses} times.")
    if row.campaign_id is None:
        return None
    q = sa.select(coupon_campaigns).where(
        coupon_campaigns.c.workspace_id == workspace_id,
        coupon_campaigns.c.campaign_id == row.campaign_id,
    )
    campaign = conn.execute(q.with_for_update() if lock and _pg(conn) else q).one()
    if campaign.global_limit is not None:
        total = _count(conn, workspace_id, r.campaign_id == row.campaign_id)
        if total >= campaign.global_limit:
            raise CouponRefused(
                f"Campaign {row.campaign_id} reached its limit of {campaign.global_limit} uses."
            )
    if campaign.per_customer_limit is not None and customer_id is not None:
        mine = _count(
            conn, workspace_id, r.campaign_id == row.campaign_id, r.customer_id == customer_id
        )
        if mine >= campaign.per_customer_limit:
            raise CouponRefused(
                f"Customer {customer_id} already used campaign {row.campaign_id} "
                f"{mine} time(s) (limit {campaign.per_customer_limit})."
            )
    return campaign


def _count(conn: sa.Connection, workspace_id: str, *where: Any) -> int:
    r = coupon_redemptions.c
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                r.workspace_id == workspace_id, r.status == "redeemed", *where
            )
        ).scalar_one()
    )


def quote(
    conn: sa.Connection,
    workspace_id: str,
    code: str,
    *,
    customer_id: str | None,
    subtotal: Decimal,
    currency: str,
    now: datetime,
    shipping: Decimal = Decimal(0),
) -> Quote:
    """What the code would take off this basket now, or why it cannot be used."""
    row = _coupon(conn, workspace_id, code, lock=False)
    _check(conn, workspace_id, row, customer_id, now, lock=False)
    spec = CouponSpec.model_validate(row.spec)
    currency = require_currency(currency)
    discount = spec.discount(subtotal, currency, shipping)
    if discount <= 0:
        raise CouponRefused(
            f"Coupon {row.code} ({spec.describe()}) gives nothing on {currency} {subtotal}.",
            hint="Spend more to reach its threshold, or use it on an order in its currency.",
        )
    return Quote(row.code, discount, currency, spec.describe())


@dataclass(frozen=True)
class Redemption:
    code: str
    order_id: str
    discount: Decimal
    currency: str
    created: bool


def redeem_code(
    db: Database,
    workspace_id: str,
    code: str,
    *,
    order_id: str,
    customer_id: str | None,
    subtotal: Decimal,
    currency: str,
    now: datetime,
    shipping: Decimal = Decimal(0),
) -> Redemption:
    """Record the use of ``code`` on ``order_id`` under the code's and campaign's locks."""
    code = normalise_code(code)
    currency = require_currency(currency)
    guard = db.write_lock if db.kind == "duckdb" else nullcontext()
    with guard, db.engine.begin() as conn:
        row = _coupon(conn, workspace_id, code, lock=True)
        r = coupon_redemptions.c
        done = conn.execute(
            sa.select(r.discount, r.currency).where(
                r.workspace_id == workspace_id, r.code == code, r.order_id == order_id
            )
        ).first()
        if done is not None:
            return Redemption(code, order_id, Decimal(done.discount or 0), done.currency, False)
        _check(conn, workspace_id, row, customer_id, now, lock=True)
        spec = CouponSpec.model_validate(row.spec)
        discount = spec.discount(subtotal, currency, shipping)
        if discount <= 0:
            raise CouponRefused(
                f"Coupon {code} ({spec.describe()}) gives nothing on {currency} {subtotal}."
            )
        conn.execute(
            coupon_redemptions.insert().values(
                workspace_id=workspace_id,
                code=code,
                order_id=order_id,
                campaign_id=row.campaign_id,
                customer_id=customer_id,
                discount=discount,
                currency=currency,
                status="redeemed",
                message_id=None,
                redeemed_at=now,
            )
        )
    return Redemption(code, order_id, discount, currency, True)


def _json_text(conn: sa.Connection, column: str, key: str) -> str:
    if conn.dialect.name == "duckdb":
        return f"json_extract_string({column}, '$.{key}')"
    return f"({column}->>'{key}')"


def record_from_events(conn: sa.Connection, workspace_id: str) -> int:
    """Record redemptions seen in the store (orders' coupon, Coupon Applied events).

    Set-based: candidate (code, order) pairs joined to the issued codes; the limits are checked
    in order of time against what is already recorded (vectorised), and uses beyond a limit are
    kept with status ``over_limit`` or ``expired`` so that nothing the store did is lost.
    """
    props = _json_text(conn, "e.properties", "coupon_id")
    name = _json_text(conn, "e.properties", "coupon_name")
    order = _json_text(conn, "e.properties", "order_id")
    candidates = conn.execute(
        sa.text(
            f"""
            WITH seen AS (
                SELECT upper(trim(o.coupon)) AS code, o.order_id, o.customer_id,
                       o.discount, o.currency, o.message_id, o.placed_at AS at
                FROM orders o
                WHERE o.workspace_id = :ws AND o.coupon IS NOT NULL
                UNION ALL
                SELECT upper(trim(coalesce({props}, {name}))), {order}, e.customer_id,
                       NULL, NULL, e.message_id, e.timestamp
                FROM events e
                WHERE e.workspace_id = :ws AND e.event = 'Coupon Applied'
                  AND coalesce({props}, {name}) IS NOT NULL AND {order} IS NOT NULL
            )
            SELECT s.code, s.order_id, c.campaign_id, s.customer_id, s.discount, s.currency,
                   s.message_id, s.at, c.max_uses, c.customer_id AS owner, c.expires_at
            FROM seen s
            JOIN coupons c ON c.workspace_id = :ws AND c.code = s.code
            WHERE NOT EXISTS (
                SELECT 1 FROM coupon_redemptions r
                WHERE r.workspace_id = :ws AND r.code = s.code AND r.order_id = s.order_id)
            """
        ),
        {"ws": workspace_id},
    ).all()
    if not candidates:
        return 0
    df = pd.DataFrame([r._asdict() for r in candidates])
    # Order Completed carries the amounts; keep one row per (code, order), amounts first.
    df = df.sort_values(["code", "order_id", "discount"], na_position="last")
    df = df.drop_duplicates(["code", "order_id"]).sort_values(["at", "code", "order_id"])
    df["status"] = _statuses(conn, workspace_id, df)
    table = pd.DataFrame(
        {
            "workspace_id": workspace_id,
            "code": df["code"],
            "order_id": df["order_id"],
            "campaign_id": df["campaign_id"],
            "customer_id": df["customer_id"],
            "discount": df["discount"],
            "currency": df["currency"],
            "status": df["status"],
            "message_id": df["message_id"],
            "redeemed_at": pd.to_datetime(df["at"]),
        }
    )
    stmt = pg_insert(coupon_redemptions).on_conflict_do_nothing()
    records: list[dict[str, Any]] = [
        {str(k): (None if pd.isna(v) else v) for k, v in rec.items()}
        for rec in table.to_dict("records")
    ]
    conn.execute(stmt, records)
    return len(records)


def _statuses(conn: sa.Connection, workspace_id: str, df: pd.DataFrame) -> list[str]:
    """redeemed / over_limit / expired per candidate, counting uses in order of time."""
    r, k = coupon_redemptions.c, coupon_campaigns.c
    per_code: dict[str, int] = dict(
        conn.execute(
            sa.select(r.code, sa.func.count())
            .where(r.workspace_id == workspace_id, r.status == "redeemed")
            .group_by(r.code)
        ).all()
    )
    per_campaign: dict[str, int] = dict(
        conn.execute(
            sa.select(r.campaign_id, sa.func.count())
            .where(r.workspace_id == workspace_id, r.status == "redeemed")
            .group_by(r.campaign_id)
        ).all()
    )
    per_customer = {
        (a, b): n
        for a, b, n in conn.execute(
            sa.select(r.campaign_id, r.customer_id, sa.func.count())
            .where(r.workspace_id == workspace_id, r.status == "redeemed")
            .group_by(r.campaign_id, r.customer_id)
        ).all()
    }
    limits = {
        row.campaign_id: (row.global_limit, row.per_customer_limit)
        for row in conn.execute(
            sa.select(k.campaign_id, k.global_limit, k.per_customer_limit).where(
                k.workspace_id == workspace_id
            )
        )
    }
    # Ranks of each candidate within its code / campaign / (campaign, customer), by time.
    nth_code = df.groupby("code").cumcount() + df["code"].map(per_code).fillna(0)
    camp = df["campaign_id"].fillna("")
    nth_campaign = df.groupby(camp).cumcount() + camp.map(per_campaign).fillna(0)
    pair = list(zip(camp, df["customer_id"].fillna(""), strict=True))
    nth_customer = df.groupby([camp, df["customer_id"].fillna("")]).cumcount() + pd.Series(
        [per_customer.get(p, 0) for p in pair], index=df.index
    )
    glob = camp.map(lambda c: (limits.get(c) or (None, None))[0])
    mine = camp.map(lambda c: (limits.get(c) or (None, None))[1])
    over = (
        (df["max_uses"].notna() & (nth_code >= df["max_uses"].fillna(0)))
        | (glob.notna() & (nth_campaign >= glob.fillna(0)))
        | (mine.notna() & (nth_customer >= mine.fillna(0)))
    )
    expired = df["expires_at"].notna() & (
        pd.to_datetime(df["at"]) >= pd.to_datetime(df["expires_at"])
    )
    # A use beyond the limit does not count towards it; recount among accepted only is a
    # refinement the store would have refused anyway: keep the conservative first-come order.
    status = pd.Series("redeemed", index=df.index)
    status[over] = "over_limit"
    status[expired] = "expired"
    return status.tolist()


def owned_by(conn: sa.Connection, workspace_id: str, customer_id: str) -> list[dict[str, Any]]:
    """A customer's coupons with their uses (for the profile and the API)."""
    c, r = coupons.c, coupon_redemptions.c
    used = (
        sa.select(sa.func.count())
        .where(r.workspace_id == c.workspace_id, r.code == c.code, r.status == "redeemed")
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(c.code, c.campaign_id, c.spec, c.issued_at, c.expires_at, c.max_uses, used)
        .where(c.workspace_id == workspace_id, c.customer_id == customer_id)
        .order_by(c.issued_at)
    ).all()
    return [
        {
            "code": row[0],
            "campaign_id": row[1],
            "description": CouponSpec.model_validate(row[2]).describe(),
            "issued_at": row[3],
            "expires_at": row[4],
            "max_uses": row[5],
            "used": int(row[6]),
        }
        for row in rows
    ]

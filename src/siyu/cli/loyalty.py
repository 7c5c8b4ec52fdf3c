"""`siyu loyalty` (points, bonuses, tiers, paid membership) and `siyu coupons`."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, runtime
from siyu.errors import InvalidInput, NotFound

loyalty_app = typer.Typer(
    help="Loyalty: points ledger, bonuses, member tiers and paid membership.", no_args_is_help=True
)
membership_app = typer.Typer(help="Paid membership of one customer.", no_args_is_help=True)
loyalty_app.add_typer(membership_app, name="membership")
coupons_app = typer.Typer(help="Coupons: campaigns, codes, checks and uses.", no_args_is_help=True)

KeyOpt = Annotated[
    str, typer.Option("--key", help="Idempotency key: running again with it posts nothing new.")
]
RefOpt = Annotated[
    str | None, typer.Option("--reference", help="What the posting refers to (order, review...).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _print(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data, default=str, ensure_ascii=False, indent=2))
    else:
        console.print(text, markup=False, highlight=False)


def _read_doc(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NotFound(f"No file {path}.", hint="Give the path of a YAML or JSON file.")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path} is not valid YAML/JSON: {exc}.") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path} must hold a mapping (key: value), not {type(doc).__name__}.")
    return doc


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--now {value!r} is not a date and time.", hint="Use YYYY-MM-DDTHH:MM:SS (UTC)."
        ) from None


NowOpt = Annotated[
    str | None, typer.Option("--now", help="Act as of this UTC moment (default: now).")
]


@loyalty_app.command("program")
def program_cmd(
    workspace: WorkspaceOpt = None,
    set_file: Annotated[
        Path | None, typer.Option("--set", help="Replace the programme with this YAML/JSON file.")
    ] = None,
) -> None:
    """Show the loyalty programme (earning rates, bonuses, expiry, tiers), or replace it."""
    from siyu.loyalty import actions
    from siyu.loyalty.program import load_program, save_program

    with runtime() as rt:
        ws = rt.workspace(workspace)
        if set_file is not None:
            with rt.db.engine.begin() as conn:
                program = save_program(conn, ws.workspace_id, _read_doc(set_file), actions.utcnow())
            console.print("Programme saved.")
        else:
            with rt.db.engine.connect() as conn:
                program = load_program(conn, ws.workspace_id)
    print(yaml.safe_dump(program.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


@loyalty_app.command("sync")
def sync_cmd(workspace: WorkspaceOpt = None, now: NowOpt = None, as_json: JsonOpt = False) -> None:
    """Points for new orders, refund reversals, expiry, birthdays, coupon uses, tiers, lapses."""
    from siyu.loyalty import actions
    from siyu.loyalty.sync import sync

    with runtime() as rt:
        ws = rt.workspace(workspace)
        report = sync(
            rt.db, ws.workspace_id, now=_when(now) or actions.utcnow(), settings=rt.settings
        )
    text = "\n".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in report.as_dict().items())
    _print(report.as_dict(), as_json, text)


@loyalty_app.command("show")
def show(customer_id: str, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Balance, next expiry, tier, paid membership and coupons of one customer."""
    from siyu.loyalty import ledger
    from siyu.loyalty.summary import member_summary

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            summary = member_summary(conn, ws.workspace_id, customer_id)
            postings = ledger.history(conn, ws.workspace_id, customer_id, limit=20)
    if summary is None:
        raise NotFound(f"Customer {customer_id!r} has no loyalty record.")
    if as_json:
        _print({**summary, "postings": postings}, True, "")
        return
    tier = summary["tier"]
    member = summary["membership"]
    console.print(f"{customer_id}: {summary['points']['balance']:,} points", markup=False)
    if tier:
        console.print(
            f"  tier {tier['name']} since {tier['since'][:10]}, review {tier['review_at'][:10]}"
        )
    if member:
        console.print(
            f"  membership {member['plan']} ({member['status']}) until {member['ends_at'][:10]}",
            markup=False,
        )
    table = Table("when", "kind", "points", "reason", "reference")
    for p in postings:
        table.add_row(
            str(p["created_at"])[:16],
            str(p["kind"]),
            f"{p['points']:+,}",
            str(p["reason"]),
            str(p["reference"] or ""),
        )
    console.print(table)


@loyalty_app.command("earn")
def earn_cmd(
    customer_id: str,
    points: int,
    key: KeyOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown to the member).")] = "manual",
    reference: RefOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Credit points to a customer (a goodwill gesture, a migration from another tool)."""
    from siyu.loyalty import actions

    with runtime() as rt:
        ws = rt.workspace(workspace)
        out = actions.earn_points(
            rt.db,
            rt.settings,
            ws.workspace_id,
            customer_id,
            points,
            key=key,
            reason=reason,
            reference=reference,
        )
    state = "Credited" if out["created"] else "Already credited under this key:"
    console.print(f"{state} {out['points']:,} points; balance {out['balance']:,}.")


@loyalty_app.command("redeem")
def redeem_cmd(
    customer_id: str,
    points: int,
    key: KeyOpt,
    reason: Annotated[str, typer.Option("--reason", help="What the points buy.")] = "reward",
    reference: RefOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Spend a customer's points (oldest lots first); refused when the balance is short."""
    from siyu.loyalty import actions

    with runtime() as rt:
        ws = rt.workspace(workspace)
        out = actions.redeem_points(
            rt.db,
            rt.settings,
            ws.workspace_id,
            customer_id,
            points,
            key=key,
            reason=reason,
            reference=reference,
        )
    state = "Redeemed" if out["created"] else "Already redeemed under this key:"
    console.print(f"{state} {-out['points']:,} points; balance {out['balance']:,}.")


@loyalty_app.command("rewards")
def rewards_cmd(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The reward catalogue: what points can be redeemed for (coupons or reward items)."""
    from siyu.loyalty.program import load_program

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            rewards = load_program(conn, ws.workspace_id).rewards
    data = [r.model_dump(mode="json", exclude_none=True) for r in rewards]
    if as_json:
        _print(data, True, "")
        return
    table = Table("reward", "name", "points", "gives")
    for r in rewards:
        gives = f"item {r.item}" if r.item else json.dumps(r.coupon)
        table.add_row(r.id, r.name, f"{r.points:,}", gives)
    console.print(table)


@loyalty_app.command("redeem-reward")
def redeem_reward_cmd(
    customer_id: str,
    reward_id: str,
    key: KeyOpt,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Spend points on a catalogue reward: a coupon code at once, or an item to ship."""
    from siyu.loyalty import actions

    with runtime() as rt:
        ws = rt.workspace(workspace)
        out = actions.redeem_reward(
            rt.db, rt.settings, ws.workspace_id, customer_id, reward_id, key=key
        )
    gives = f"coupon {out['coupon']['code']}" if out["coupon"] else f"item {out['item']} to ship"
    state = "Redeemed" if out["created"] else "Already redeemed under this key:"
    text = (
        f"{state} {out['name']} for {-out['points']:,} points: {gives}; balance {out['balance']:,}."
    )
    _print(out, as_json, text)


@loyalty_app.command("bonus")
def bonus_cmd(
    customer_id: str,
    bonus: Annotated[
        str, typer.Argument(help="signup, checkin, review, ugc, challenge, birthday or invite.")
    ],
    reference: RefOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Credit a programme bonus under its rule (once, per local day, per reference...)."""
    from siyu.loyalty import actions

    with runtime() as rt:
        ws = rt.workspace(workspace)
        out = actions.award_bonus(
            rt.db, rt.settings, ws.workspace_id, customer_id, bonus, reference=reference
        )
    console.print(f"{bonus}: {out['points']:,} points; balance {out['balance']:,}.")


@loyalty_app.command("plans")
def plans_cmd(workspace: WorkspaceOpt = None) -> None:
    """List the paid membership plans."""
    from siyu.loyalty import membership

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            plans = membership.list_plans(conn, ws.workspace_id)
    table = Table("plan", "name", "price", "months", "grace days", "benefits")
    for p in plans:
        table.add_row(
            p.plan_id,
            p.name,
            f"{p.currency} {p.price}",
            str(p.period_months),
            str(p.grace_days),
            ", ".join(p.benefits),
        )
    console.print(table)


@loyalty_app.command("plan-create")
def plan_create(
    plan_id: str,
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    price: Annotated[str, typer.Option("--price", help="Price per period, e.g. 49.00.")],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code of the price.")],
    months: Annotated[int, typer.Option("--months", help="Length of one period in months.")] = 12,
    grace_days: Annotated[
        int, typer.Option("--grace-days", help="Days to renew after the end.")
    ] = 7,
    benefit: Annotated[
        list[str] | None, typer.Option("--benefit", help="A benefit (repeat the option).")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create a paid membership plan."""
    from siyu.loyalty import actions, membership
    from siyu.money import to_money

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            plan = membership.create_plan(
                conn,
                ws.workspace_id,
                plan_id,
                name=name,
                price=to_money(price, "price"),
                currency=currency,
                period_months=months,
                grace_days=grace_days,
                benefits=benefit or [],
                now=actions.utcnow(),
            )
    console.print(
        f"Plan {plan.plan_id}: {plan.currency} {plan.price} per {plan.period_months} months."
    )


@membership_app.command("start")
def membership_start(
    customer_id: str,
    plan_id: str,
    key: KeyOpt,
    reference: RefOpt = None,
    no_auto_renew: Annotated[
        bool, typer.Option("--no-auto-renew", help="Do not mark it for renewal.")
    ] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Start a paid membership (after the payment; --reference names it)."""
    from siyu.loyalty import actions

    with runtime() as rt:
        ws = rt.workspace(workspace)
        out = actions.start_membership(
            rt.db,
            rt.settings,
            ws.workspace_id,
            customer_id,
            plan_id,
            key=key,
            reference=reference,
            auto_renew=not no_auto_renew,
        )
    console.print(f"{customer_id}: {out['plan_id']} until {out['ends_at'][:10]}.")


@membership_app.command("renew")
def membership_renew(
    customer_id: str, key: KeyOpt, reference: RefOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """Extend by one period from the later of the current end and now."""
    from siyu.loyalty import actions

    with runtime() as rt:
        ws = rt.workspace(workspace)
        out = actions.renew_membership(
            rt.db, rt.settings, ws.workspace_id, customer_id, key=key, reference=reference
        )
    console.print(f"{customer_id}: {out['plan_id']} until {out['ends_at'][:10]}.")


@membership_app.command("cancel")
def membership_cancel(
    customer_id: str,
    immediate: Annotated[
        bool, typer.Option("--immediate", help="End it now instead of at the period's end.")
    ] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Stop renewal (benefits to the end of the period), or end the membership now."""
    from siyu.loyalty import actions

    with runtime() as rt:
        ws = rt.workspace(workspace)
        out = actions.cancel_membership(
            rt.db, rt.settings, ws.workspace_id, customer_id, immediate=immediate
        )
    console.print(f"{customer_id}: {out['status']}, ends {out['ends_at'][:10]}.")


@coupons_app.command("campaign-create")
def campaign_create(
    campaign_id: str,
    spec: Annotated[str, typer.Option("--spec", help="JSON, e.g. '{\"percent\": 10}'.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    valid_days: Annotated[
        int | None, typer.Option("--valid-days", help="Each code is valid this many days.")
    ] = None,
    valid_until: Annotated[
        str | None, typer.Option("--valid-until", help="Campaign end (UTC, ISO 8601).")
    ] = None,
    per_customer: Annotated[
        int | None, typer.Option("--per-customer", help="Uses per customer (default 1).")
    ] = 1,
    limit: Annotated[int | None, typer.Option("--limit", help="Uses in total.")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create a coupon campaign: what its codes give, validity and limits."""
    from siyu.loyalty import actions, coupons

    try:
        doc = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--spec is not JSON: {exc}.", field="spec") from None
    if not isinstance(doc, dict):
        raise InvalidInput("--spec must be a JSON object.", field="spec")
    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            c = coupons.create_campaign(
                conn,
                ws.workspace_id,
                campaign_id,
                name=name or campaign_id,
                spec=doc,
                now=actions.utcnow(),
                valid_until=_when(valid_until),
                valid_days=valid_days,
                per_customer_limit=per_customer,
                global_limit=limit,
            )
    console.print(f"Campaign {c.campaign_id}: {c.spec.describe()}.", markup=False)


@coupons_app.command("issue")
def issue_cmd(
    key: KeyOpt,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Campaign id.")] = None,
    spec: Annotated[str | None, typer.Option("--spec", help="Ad-hoc JSON spec instead.")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="Owner (customer id).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Issue one unique code (from a campaign or an ad-hoc spec) once per key."""
    from siyu.loyalty import actions

    doc = json.loads(spec) if spec else None
    with runtime() as rt:
        ws = rt.workspace(workspace)
        out = actions.issue_coupon(
            rt.db,
            rt.settings,
            ws.workspace_id,
            key=key,
            customer_id=customer,
            campaign_id=campaign,
            spec=doc,
        )
    console.print(out["code"], markup=False, highlight=False)
    console.print(f"  {out['description']}, expires {out['expires_at'] or 'never'}", markup=False)


@coupons_app.command("check")
def check_cmd(
    code: str,
    subtotal: Annotated[str, typer.Option("--subtotal", help="Basket amount.")],
    currency: Annotated[str, typer.Option("--currency", help="Basket currency.")],
    customer: Annotated[str | None, typer.Option("--customer", help="Who checks out.")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """What CODE would take off a basket now, or why it cannot be used."""
    from siyu.loyalty import actions, coupons
    from siyu.money import to_money

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            q = coupons.quote(
                conn,
                ws.workspace_id,
                code,
                customer_id=customer,
                subtotal=Decimal(to_money(subtotal, "subtotal")),
                currency=currency,
                now=actions.utcnow(),
            )
    console.print(f"{q.code}: {q.currency} {q.discount} off ({q.description}).", markup=False)

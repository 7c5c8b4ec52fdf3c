"""`siyu referrals`, `siyu groupbuys`, `siyu assists` and `siyu fission` (fission campaigns).

Every command that changes a state publishes the pending fission events through the pipeline
before it returns, so the event log always has them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, runtime
from siyu.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from siyu.runtime import Runtime

referrals_app = typer.Typer(
    help="Referrals: invite codes and links, two-sided rewards, fraud rules, review.",
    no_args_is_help=True,
)
groupbuys_app = typer.Typer(
    help="Group buys (拼团): campaigns, groups, joins and settlement.", no_args_is_help=True
)
assists_app = typer.Typer(
    help="Friend assists (助力): campaigns with reward thresholds, assists, progress.",
    no_args_is_help=True,
)
fission_app = typer.Typer(
    help="Fission: the periodic work of referrals, group buys and assists.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
NowOpt = Annotated[
    str | None, typer.Option("--now", help="Act as of this UTC moment (default: now).")
]
StartsOpt = Annotated[
    str | None, typer.Option("--starts", help="Campaign start, UTC (default: now).")
]
EndsOpt = Annotated[str | None, typer.Option("--ends", help="Campaign end, UTC (default: none).")]
IdOpt = Annotated[str | None, typer.Option("--id", help="Campaign id (default: generated).")]


def _print(data: Any, as_json: bool, text: str = "") -> None:
    if as_json or not text:
        print(json.dumps(data, default=str, ensure_ascii=False, indent=2))
    else:
        console.print(text, markup=False, highlight=False)


def _when(value: str | None, option: str = "--now") -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{option} {value!r} is not a date and time.", hint="Use YYYY-MM-DDTHH:MM:SS (UTC)."
        ) from None
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _read_doc(path: Path) -> Any:
    if not path.is_file():
        raise NotFound(f"No file {path}.", hint="Give the path of a YAML or JSON file.")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path} is not valid YAML/JSON: {exc}.") from None


def _decimal(value: str | None, option: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"{option} {value!r} is not a number.", field=option) from None


def _publish(rt: Runtime, workspace_id: str, **scope: str) -> None:
    """Publish the events of the object a command changed (``scope``), or all pending."""
    from siyu.fission.events import publish

    publish(rt.db, workspace_id, settings=rt.settings, scope=scope or None)


# -- referrals ----------------------------------------------------------------------------------


@referrals_app.command("code")
def code_cmd(customer_id: str, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The customer's invite code and link (created on first request)."""
    from siyu.fission import referrals

    with runtime() as rt:
        ws = rt.workspace(workspace)
        code = referrals.invite_code(rt.db, ws.workspace_id, customer_id)
        link = code.link(rt.settings.public_base_url)
    data = {"code": code.code, "customer_id": code.customer_id, "link": link}
    _print(data, as_json, f"{code.code}  {link}")


@referrals_app.command("refer")
def refer_cmd(
    code: str,
    friend_id: str,
    workspace: WorkspaceOpt = None,
    ip: Annotated[str | None, typer.Option("--ip", help="The friend's IP address.")] = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record that a friend arrived through an invite code (the first code used wins)."""
    from siyu.fission import referrals

    with runtime() as rt:
        ws = rt.workspace(workspace)
        row, created = referrals.refer(
            rt.db, ws.workspace_id, code, friend_id, ip=ip, now=_when(now)
        )
        if created:
            _publish(rt, ws.workspace_id, referral_id=str(row["referral_id"]))
    state = row["state"] + (f" ({row['reason']})" if row["reason"] else "")
    seen = "" if created else " (referred before)"
    _print({**row, "created": created}, as_json, f"{row['referral_id']}: {state}{seen}")


@referrals_app.command("list")
def list_cmd(
    workspace: WorkspaceOpt = None,
    state: Annotated[
        str | None, typer.Option("--state", help="pending, qualified, rewarded or rejected.")
    ] = None,
    referrer: Annotated[
        str | None, typer.Option("--referrer", help="Only this referrer's referrals.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Referrals, newest first, with state, reason and fraud flag."""
    from siyu.fission import referrals

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            rows = referrals.list_referrals(
                conn, ws.workspace_id, state=state, referrer_id=referrer, limit=limit
            )
    if as_json:
        _print(rows, True)
        return
    table = Table("referral", "referrer", "friend", "state", "reason", "flag", "created")
    for r in rows:
        table.add_row(
            str(r["referral_id"]),
            str(r["referrer_id"]),
            str(r["friend_id"]),
            str(r["state"]),
            str(r["reason"] or ""),
            str(r["flag"] or ""),
            str(r["created_at"])[:16],
        )
    console.print(table)


@referrals_app.command("show")
def show_cmd(referral_id: str, workspace: WorkspaceOpt = None) -> None:
    """One referral with its history of states (JSON)."""
    from siyu.fission import referrals

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            row = referrals.get_referral(conn, ws.workspace_id, referral_id)
    _print(row, True)


@referrals_app.command("review")
def review_cmd(
    referral_id: str,
    workspace: WorkspaceOpt = None,
    approve: Annotated[
        bool,
        typer.Option("--approve/--reject", help="Clear the fraud flag, or reject the referral."),
    ] = True,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why it is rejected (default rejected_on_review)."),
    ] = None,
) -> None:
    """Approve (clear an ip_burst flag) or reject a referral that is not rewarded yet."""
    from siyu.fission import referrals

    with runtime() as rt:
        ws = rt.workspace(workspace)
        row = referrals.review(rt.db, ws.workspace_id, referral_id, approve=approve, reason=reason)
        _publish(rt, ws.workspace_id, referral_id=referral_id)
    state = row["state"] + (f" ({row['reason']})" if row["reason"] else "")
    console.print(f"{referral_id}: {state}, flag {row['flag'] or 'none'}", markup=False)


@referrals_app.command("program")
def program_cmd(
    workspace: WorkspaceOpt = None,
    set_file: Annotated[
        Path | None, typer.Option("--set", help="Replace the programme with this YAML/JSON file.")
    ] = None,
) -> None:
    """Show the referral programme (rewards, windows, fraud limits), or replace it."""
    from siyu.fission.program import load_program, save_program

    with runtime() as rt:
        ws = rt.workspace(workspace)
        if set_file is not None:
            doc = _read_doc(set_file)
            if not isinstance(doc, dict):
                raise InvalidInput(f"{set_file} must hold a mapping (key: value).")
            with rt.db.engine.begin() as conn:
                program = save_program(conn, ws.workspace_id, doc, ws.base_currency)
            console.print("Programme saved.")
        else:
            with rt.db.engine.connect() as conn:
                program = load_program(conn, ws.workspace_id)
    print(yaml.safe_dump(program.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


@referrals_app.command("process")
def process_cmd(
    workspace: WorkspaceOpt = None, now: NowOpt = None, as_json: JsonOpt = False
) -> None:
    """Qualify, reject, flag and reward referrals (idempotent), then publish their events."""
    from siyu.fission.common import utcnow
    from siyu.fission.qualify import process_referrals

    with runtime() as rt:
        ws = rt.workspace(workspace)
        report = process_referrals(rt.db, ws.workspace_id, now=_when(now) or utcnow())
        _publish(rt, ws.workspace_id)
    data = report.as_dict()
    text = (
        f"qualified {data['qualified']}, flagged {data['flagged']}, rewarded {data['rewarded']}, "
        f"rejected {sum(data['rejected'].values())} {data['rejected'] or ''}"
    ).rstrip()
    text += "".join(f"\n  {e}" for e in data["errors"])
    _print(data, as_json, text)


# -- group buys ---------------------------------------------------------------------------------


def _tier(value: str) -> dict[str, Any]:
    members, sep, price = value.partition(":")
    if not sep or not members.strip().isdigit():
        raise InvalidInput(f"--tier {value!r} must be MEMBERS:PRICE, e.g. 3:70.", field="--tier")
    return {"members": int(members), "price": price.strip()}


@groupbuys_app.command("create")
def gb_create(
    name: str,
    product: Annotated[str, typer.Option("--product", help="Product id or SKU.")],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 currency.")],
    list_price: Annotated[str, typer.Option("--list-price", help="The price outside groups.")],
    size: Annotated[int, typer.Option("--size", help="Members of a full group (2-100).")] = 3,
    price: Annotated[str | None, typer.Option("--price", help="The group price.")] = None,
    discount: Annotated[
        str | None, typer.Option("--discount", help="Percent off the list price, e.g. 30.")
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option("--tier", help="MEMBERS:PRICE of a tier (repeat; price falls as more join)."),
    ] = None,
    hours: Annotated[float, typer.Option("--hours", help="Time limit of a group.")] = 24,
    campaign_id: IdOpt = None,
    starts: StartsOpt = None,
    ends: EndsOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create a group-buy campaign: a price, a discount or tiers, a size and a time limit."""
    from siyu.fission import groupbuys

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            campaign = groupbuys.create_campaign(
                conn,
                ws.workspace_id,
                name=name,
                product_id=product,
                currency=currency,
                list_price=_decimal(list_price, "--list-price") or Decimal(0),
                group_size=size,
                price=_decimal(price, "--price"),
                discount_pct=_decimal(discount, "--discount"),
                tiers=[_tier(t) for t in tier] if tier else None,
                time_limit_hours=hours,
                starts_at=_when(starts, "--starts"),
                ends_at=_when(ends, "--ends"),
                campaign_id=campaign_id,
            )
    tiers = ", ".join(f"{t['members']} -> {t['price']}" for t in campaign["tiers"])
    console.print(f"Campaign {campaign['campaign_id']} created: {tiers}", markup=False)


@groupbuys_app.command("campaigns")
def gb_campaigns(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The group-buy campaigns."""
    from siyu.fission import groupbuys

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            rows = groupbuys.list_campaigns(conn, ws.workspace_id)
    if as_json:
        _print(rows, True)
        return
    table = Table("campaign", "name", "product", "size", "tiers", "hours")
    for c in rows:
        table.add_row(
            str(c["campaign_id"]),
            str(c["name"]),
            str(c["product_id"]),
            str(c["group_size"]),
            ", ".join(f"{t['members']}:{t['price']}" for t in c["tiers"]),
            f"{c['time_limit_seconds'] / 3600:g}",
        )
    console.print(table)


def _group_text(group: dict[str, Any]) -> str:
    lines = [
        f"{group['group_id']}: {group['status']}, {group['members']}/{group['size']} members, "
        f"expires {str(group['expires_at'])[:16]}"
    ]
    for m in group.get("member_list", []):
        confirmed, refund = m["confirmed_price"], m["refund_amount"]
        settled = f", confirmed {confirmed:.2f}" if confirmed is not None else ""
        owed = f", refund {refund:.2f}" if refund else ""
        lines.append(
            f"  seat {m['seat']}: {m['customer_id']} paid {m['paid_price']:.2f} {m['currency']}"
            f"{settled}{owed}"
        )
    return "\n".join(lines)


@groupbuys_app.command("open")
def gb_open(
    campaign_id: str,
    leader_id: str,
    order: Annotated[str | None, typer.Option("--order", help="The leader's order id.")] = None,
    now: NowOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The leader opens a group of a campaign (taking seat 1)."""
    from siyu.fission import groupbuys

    with runtime() as rt:
        ws = rt.workspace(workspace)
        group = groupbuys.open_group(
            rt.db, ws.workspace_id, campaign_id, leader_id, order_id=order, now=_when(now)
        )
        _publish(rt, ws.workspace_id, group_id=str(group["group_id"]))
    _print(group, as_json, _group_text(group))


@groupbuys_app.command("join")
def gb_join(
    group_id: str,
    customer_id: str,
    order: Annotated[str | None, typer.Option("--order", help="The member's order id.")] = None,
    now: NowOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take the next free seat of a group; the last seat completes it."""
    from siyu.fission import groupbuys

    with runtime() as rt:
        ws = rt.workspace(workspace)
        group = groupbuys.join_group(
            rt.db, ws.workspace_id, group_id, customer_id, order_id=order, now=_when(now)
        )
        _publish(rt, ws.workspace_id, group_id=group_id)
    _print(group, as_json, _group_text(group))


@groupbuys_app.command("list")
def gb_list(
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="open, completed or expired.")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Groups by campaign and status."""
    from siyu.fission import groupbuys

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            rows = groupbuys.list_groups(conn, ws.workspace_id, campaign_id=campaign, status=status)
    _print(rows, as_json, "\n".join(_group_text(g) for g in rows) or "No groups.")


@groupbuys_app.command("show")
def gb_show(group_id: str, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """One group with its members, prices paid and confirmed, refunds owed."""
    from siyu.fission import groupbuys

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            group = groupbuys.get_group(conn, ws.workspace_id, group_id)
    _print(group, as_json, _group_text(group))


@groupbuys_app.command("close")
def gb_close(workspace: WorkspaceOpt = None, now: NowOpt = None) -> None:
    """Settle groups whose time ran out: completed at the tier reached, or voided and refunded."""
    from siyu.fission import groupbuys

    with runtime() as rt:
        ws = rt.workspace(workspace)
        counts = groupbuys.close_due(rt.db, ws.workspace_id, now=_when(now))
        _publish(rt, ws.workspace_id)
    console.print(f"completed {counts['completed']}, expired {counts['expired']}")


# -- assists ------------------------------------------------------------------------------------


@assists_app.command("create")
def as_create(
    name: str,
    thresholds: Annotated[
        Path,
        typer.Option(
            "--thresholds",
            help='YAML/JSON list: [{"helpers": 3, "reward": {"kind": "coupon", ...}}, ...].',
        ),
    ],
    daily_cap: Annotated[
        int, typer.Option("--daily-cap", help="Assists per helper per local day.")
    ] = 3,
    new_users_only: Annotated[
        bool, typer.Option("--new-users-only", help="Only helpers with no order, new since start.")
    ] = False,
    campaign_id: IdOpt = None,
    starts: StartsOpt = None,
    ends: EndsOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create a friend-assist campaign with reward thresholds."""
    from siyu.fission import assists

    doc = _read_doc(thresholds)
    if not isinstance(doc, list):
        raise InvalidInput(f"{thresholds} must hold a list of thresholds.", field="--thresholds")
    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            campaign = assists.create_campaign(
                conn,
                ws.workspace_id,
                name=name,
                thresholds=doc,
                base_currency=ws.base_currency,
                daily_cap=daily_cap,
                new_users_only=new_users_only,
                starts_at=_when(starts, "--starts"),
                ends_at=_when(ends, "--ends"),
                campaign_id=campaign_id,
            )
    console.print(f"Campaign {campaign['campaign_id']} created.", markup=False)


@assists_app.command("campaigns")
def as_campaigns(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The friend-assist campaigns."""
    from siyu.fission import assists

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            rows = assists.list_campaigns(conn, ws.workspace_id)
    if as_json:
        _print(rows, True)
        return
    table = Table("campaign", "name", "thresholds", "daily cap", "new users only")
    for c in rows:
        table.add_row(
            str(c["campaign_id"]),
            str(c["name"]),
            ", ".join(str(t["helpers"]) for t in c["thresholds"]),
            str(c["daily_cap"]),
            "yes" if c["new_users_only"] else "no",
        )
    console.print(table)


@assists_app.command("assist")
def as_assist(
    campaign_id: str,
    target_id: str,
    helper_id: str,
    now: NowOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A helper assists a target; rewards of the thresholds reached are granted once."""
    from siyu.fission import assists

    with runtime() as rt:
        ws = rt.workspace(workspace)
        result = assists.assist(
            rt.db, ws.workspace_id, campaign_id, target_id, helper_id, now=_when(now)
        )
        _publish(rt, ws.workspace_id, campaign_id=campaign_id, target_id=str(result["target_id"]))
    text = f"{result['target_id']}: {result['assists']} assists" + "".join(
        f"\n  unlocked at {u['threshold']}: {u['reward']}" for u in result["unlocked"]
    )
    _print(result, as_json, text)


@assists_app.command("status")
def as_status(
    campaign_id: str, target_id: str, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """A target's helpers, the thresholds and the rewards unlocked so far."""
    from siyu.fission import assists

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            status = assists.progress(conn, ws.workspace_id, campaign_id, target_id)
    got = {r["threshold"]: r["description"] for r in status["rewards"]}
    text = f"{target_id}: {status['assists']} assists" + "".join(
        f"\n  {t['helpers']} helpers: {got.get(t['helpers'], 'locked')}"
        for t in status["thresholds"]
    )
    _print(status, as_json, text)


@assists_app.command("sync")
def as_sync(workspace: WorkspaceOpt = None, now: NowOpt = None) -> None:
    """Grant rewards of thresholds reached but not recorded (after a crash); never twice."""
    from siyu.fission import assists

    with runtime() as rt:
        ws = rt.workspace(workspace)
        granted = assists.sync_rewards(rt.db, ws.workspace_id, now=_when(now))
        _publish(rt, ws.workspace_id)
    console.print(f"rewards repaired: {granted}")


# -- all of it ----------------------------------------------------------------------------------


@fission_app.command("process")
def fission_process(
    workspace: WorkspaceOpt = None, now: NowOpt = None, as_json: JsonOpt = False
) -> None:
    """Referral rules, group-buy settlement, assist reward repair, then pending events."""
    from siyu.fission.common import utcnow
    from siyu.fission.service import process

    with runtime() as rt:
        ws = rt.workspace(workspace)
        report = process(rt.db, ws.workspace_id, now=_when(now) or utcnow(), settings=rt.settings)
    ref = report["referrals"]
    text = (
        f"referrals: qualified {ref['qualified']}, flagged {ref['flagged']}, rewarded "
        f"{ref['rewarded']}, rejected {sum(ref['rejected'].values())}\n"
        f"group buys: completed {report['group_buys']['completed']}, expired "
        f"{report['group_buys']['expired']}\n"
        f"assist rewards repaired: {report['assist_rewards_repaired']}\n"
        f"events: {report['events']}"
    )
    _print(report, as_json, text)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


@fission_app.command("metrics")
def fission_metrics_cmd(
    workspace: WorkspaceOpt = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Start of the range, UTC (default: until - 30 days)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="End of the range, excluded, UTC (default: now).")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Inviters in the KOC ranking.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Invites, visits per share, invite conversion, K-factor, referred vs organic customers,
    cost per referred customer and the top inviters."""
    from siyu.fission.common import utcnow
    from siyu.fission.metrics import fission_metrics

    end = _when(until, "--until") or utcnow()
    start = _when(since, "--since") or end - timedelta(days=30)
    with runtime() as rt:
        ws = rt.workspace(workspace)
        m = fission_metrics(rt.db, ws.workspace_id, start, end, top=top)
    if as_json:
        _print(m.to_dict(), True)
        return
    lines = [
        f"{m.since:%Y-%m-%d %H:%M} to {m.until:%Y-%m-%d %H:%M} (UTC)",
        f"invites sent {m.invites_sent:,} by {m.sharers:,} sharers, visits {m.visits:,}, "
        f"fission coefficient {_num(m.fission_coefficient)}",
        f"referrals {m.referrals_created:,}, referred customers {m.referred_customers:,}, "
        f"invite conversion {_pct(m.invite_conversion)}, K-factor {_num(m.k_factor, 3)}",
        f"30-day retention: referred {_pct(m.referred.retention_30d)} "
        f"({m.referred.customers:,}), organic {_pct(m.organic.retention_30d)} "
        f"({m.organic.customers:,})",
        f"predicted CLV 12m: referred {_num(m.referred.avg_clv_12m)}, organic "
        f"{_num(m.organic.avg_clv_12m)}",
        f"cost per referred customer {_num(m.cost_per_referred_customer)} "
        f"({m.rewarded_referrals:,} rewarded)",
    ]
    lines += [
        f"  #{n} {i.customer_id}: referred {i.referred_customers:,} of {i.referrals:,} referrals, "
        f"{i.shares:,} shares, {i.visits:,} visits, revenue {_num(i.referred_revenue_base)}"
        for n, i in enumerate(m.top_inviters, 1)
    ]
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)

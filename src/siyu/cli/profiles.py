"""``siyu profile``: a customer's golden record, by customer id or by any identifier."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from siyu.cli.common import WorkspaceOpt, console, runtime

profile_app = typer.Typer(help="Customer profiles: the golden record.", no_args_is_help=True)


@profile_app.command("show")
def show_cmd(
    customer: Annotated[
        str,
        typer.Argument(
            help="A customer id, an email, a phone number (+6281234567890), or kind:value."
        ),
    ],
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
    recent: Annotated[
        int | None,
        typer.Option(help="Recent orders and events to list (default: SIYU_PROFILE_RECENT)."),
    ] = None,
) -> None:
    """Show a customer's traits (with source and time), identifiers, consents, orders, events."""
    from siyu.profiles import load_profile

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            profile = load_profile(
                conn,
                ws.workspace_id,
                customer,
                recent=recent or rt.settings.profile_recent,
                trait_priority=rt.settings.profile_trait_priority,
            )
    if as_json:
        console.print_json(json.dumps(profile, default=str))
        return
    _print(profile)


def _line(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _print(profile: dict[str, Any]) -> None:
    _line(
        f"Customer {profile['customer_id']}  country {profile.get('country') or '-'}, "
        f"language {profile.get('language') or '-'}, seen {profile['first_seen_at']} .. "
        f"{profile['last_seen_at']}"
    )
    _line("Traits:")
    for name, t in profile.get("traits", {}).items():
        value = json.dumps(t["value"], ensure_ascii=False, default=str)
        _line(
            f"  {name} = {value}  ({t['source'] or t['source_id'] or '-'}, {t['at']}, {t['rule']})"
        )
    _line("Identifiers:")
    for r in profile.get("identifiers", []):
        _line(f"  {r['kind']}:{r['value']}")
    _line("Consents:")
    for r in profile.get("consents", []):
        _line(f"  {r['purpose']}/{r['channel']}: {r['status']} at {r['timestamp']}")
    _line("Recent orders:")
    for r in profile.get("orders", []):
        _line(f"  {r['placed_at']} {r['order_id']} {r['total']} {r['currency']} {r['status']}")
    _line("Recent events:")
    for r in profile.get("events", []):
        _line(f"  {r['timestamp']} {r['type']} {r['event'] or r['name'] or ''}".rstrip())
    shown = {"traits", "identifiers", "consents", "orders", "events"}
    for key, value in profile.items():
        if isinstance(value, list | dict) and key not in shown:
            _line(f"{key}: {json.dumps(value, ensure_ascii=False, default=str)}")

"""Data commands: status, quarantine, FX rates, API keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, runtime
from siyu.errors import InvalidInput, NotFound

quarantine_app = typer.Typer(help="Records that could not be stored: list, show, replay.")
fx_app = typer.Typer(help="FX rates used to value orders in the base currency.")
keys_app = typer.Typer(help="Workspace API keys (scopes: admin, write, read).")


def status(workspace: WorkspaceOpt = None) -> None:
    """Row counts of the workspace and its data-quality problems."""
    with runtime() as rt:
        report = rt.status(rt.workspace(workspace))
    console.print(f"siyu status - workspace {report['workspace']}", highlight=False)
    table = Table()
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in report["counts"].items():
        table.add_row(name, f"{n:,}")
    console.print(table)
    if not report["problems"]:
        console.print("[green]No data-quality problems.[/]")
    for p in report["problems"]:
        console.print(f"[yellow]! {p['message']}[/]\n  {p['hint']}")


@quarantine_app.command("list")
def quarantine_list(
    workspace: WorkspaceOpt = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed records.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
) -> None:
    """List quarantined records with their origin, position and reason."""
    from siyu.collect.quarantine import list_quarantine

    with runtime() as rt:
        ws = rt.workspace(workspace)
        rows = list_quarantine(
            rt.db.engine,
            ws.workspace_id,
            status=None if all_ else "open",
            reason_code=reason,
            limit=limit,
        )
    if not rows:
        console.print("No quarantined records.")
        return
    table = Table()
    for col in ("id", "origin", "position", "reason", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["quarantine_id"], r["origin"], str(r["position"]), r["reason"], r["status"])
    console.print(table)


@quarantine_app.command("show")
def quarantine_show(quarantine_id: str, workspace: WorkspaceOpt = None) -> None:
    """Show one quarantined record: reason and original payload."""
    from siyu.collect.quarantine import get_quarantined

    with runtime() as rt:
        ws = rt.workspace(workspace)
        row = get_quarantined(rt.db.engine, ws.workspace_id, quarantine_id)
    for key in ("quarantine_id", "origin", "position", "reason_code", "reason", "field", "status"):
        console.print(f"[bold]{key}[/]: {row[key]}")
    console.print("[bold]payload[/]:")
    console.print(row["payload"], markup=False, highlight=False)


@quarantine_app.command("replay")
def quarantine_replay(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Quarantine ids (default: all open).")
    ] = None,
    workspace: WorkspaceOpt = None,
    reason: Annotated[str | None, typer.Option(help="Only records with this reason.")] = None,
    payload: Annotated[
        Path | None, typer.Option(help="A corrected JSON payload for the one named record.")
    ] = None,
) -> None:
    """Send quarantined records through the pipeline again (after fixing their cause)."""
    from siyu.collect.replay import replay

    override = None
    if payload is not None:
        if not payload.is_file():
            raise NotFound(f"Payload file {payload} does not exist.", hint="Check the path.")
        override = payload.read_text(encoding="utf-8", errors="replace")
        try:
            orjson.loads(override)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(
                f"{payload} is not valid JSON: {exc}",
                hint="Fix the corrected payload, then replay again.",
                field="payload",
            ) from exc
    with runtime() as rt:
        result = replay(
            rt.pipeline(rt.workspace(workspace)),
            ids=ids or None,
            reason_code=reason,
            payload_override=override,
        )
    console.print(
        f"Replayed {result.replayed}: stored {result.stored}, already stored "
        f"{result.duplicates}, quarantined again {len(result.still_quarantined)}."
    )


@fx_app.command("import")
def fx_import(
    path: Annotated[
        Path, typer.Argument(help="CSV with columns date,currency,rate[,base_currency].")
    ],
    workspace: WorkspaceOpt = None,
) -> None:
    """Import daily FX rates (1 unit of currency = rate base units) and value orders."""
    from siyu.money.fx import import_rates_file

    with runtime() as rt:
        ws = rt.workspace(workspace)
        report = import_rates_file(rt.db.engine, ws.workspace_id, ws.base_currency, path)
    console.print(
        f"Read {report.rows} rows: stored {report.stored}, rejected {len(report.errors)}; "
        f"{report.orders_filled} orders now have a {ws.base_currency} value."
    )
    for error in report.errors[:20]:
        console.print(f"[yellow]  {error}[/]")
    if report.errors:
        raise typer.Exit(1)


@keys_app.command("create")
def keys_create(
    name: str,
    scope: Annotated[list[str], typer.Option(help="admin, write or read (repeatable).")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Create an API key; the key is printed once and stored hashed."""
    from siyu.access import create_key, parse_scopes

    scopes = parse_scopes(scope)
    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            key, secret = create_key(conn, ws.workspace_id, name, scopes)
    console.print(f"Created key {key.key_id} ({','.join(sorted(key.scopes))}). Store it now:")
    console.print(secret, markup=False, highlight=False)


@keys_app.command("list")
def keys_list(workspace: WorkspaceOpt = None) -> None:
    """List API keys (never their secrets)."""
    from siyu.access import list_keys

    with runtime() as rt:
        keys = list_keys(rt.db.engine, rt.workspace(workspace).workspace_id)
    table = Table()
    for col in ("id", "name", "prefix", "scopes", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(
            k.key_id,
            k.name,
            k.prefix,
            ",".join(sorted(k.scopes)),
            str(k.created_at),
            str(k.revoked_at or ""),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id or prefix.")], workspace: WorkspaceOpt = None
) -> None:
    """Revoke an API key at once."""
    from siyu.access import revoke_key

    with runtime() as rt:
        revoked = revoke_key(rt.db.engine, rt.workspace(workspace).workspace_id, key)
    console.print(f"Revoked {revoked.key_id} ({revoked.prefix}).")

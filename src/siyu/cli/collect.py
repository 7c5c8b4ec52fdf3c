"""Collect commands: sources with their write keys and webhook secrets, and store imports."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, runtime
from siyu.collect.kinds import SOURCE_KINDS

sources_app = typer.Typer(help="Sources (store, site, channel) and their write keys.")

WEBHOOK_KINDS = ("shopify", "whatsapp")


def _show_key(key: str) -> None:
    console.print("Write key (shown once; store it now):")
    console.print(key, markup=False, highlight=False)


@sources_app.command("add")
def sources_add(
    name: str,
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(SOURCE_KINDS)}.")],
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            help="Secret the vendor signs webhooks with (Shopify app secret, Meta app secret)."
        ),
    ] = None,
    verify_token: Annotated[
        str | None,
        typer.Option(help="WhatsApp handshake verify token (default: generated and shown)."),
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create a source; print its write key once (stored hashed) and its webhook URL."""
    from siyu.collect.sources import create_source, set_webhook_secret

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            source, key = create_source(conn, ws.workspace_id, name, kind)
            if kind == "whatsapp" and verify_token is None:
                verify_token = secrets.token_urlsafe(18)
            if webhook_secret or verify_token:
                set_webhook_secret(
                    conn,
                    ws.workspace_id,
                    name,
                    webhook_secret=webhook_secret,
                    verify_token=verify_token,
                )
    console.print(f"Created source '{name}' ({kind}), id {source.source_id}.")
    _show_key(key)
    if kind in WEBHOOK_KINDS:
        console.print(f"Webhook URL: <siyu host>/webhooks/{kind}/{source.source_id}")
        if verify_token:
            console.print(f"Verify token: {verify_token}", markup=False, highlight=False)
        if not webhook_secret:
            console.print(
                "[yellow]No webhook secret yet: webhooks are refused until you run "
                f"'siyu sources secret {name} --webhook-secret ...'.[/]"
            )


@sources_app.command("list")
def sources_list(workspace: WorkspaceOpt = None) -> None:
    """List sources with key prefix and state (never keys or secrets)."""
    from siyu.collect.sources import list_sources

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            rows = list_sources(conn, ws.workspace_id)
    table = Table()
    for col in ("id", "name", "kind", "key prefix", "webhook secret", "created", "revoked"):
        table.add_column(col)
    for s in rows:
        table.add_row(
            s.source_id,
            s.name,
            s.kind,
            s.write_key_prefix or "",
            "set" if s.has_webhook_secret else "",
            str(s.created_at),
            str(s.revoked_at or ""),
        )
    console.print(table)


@sources_app.command("rotate")
def sources_rotate(name: str, workspace: WorkspaceOpt = None) -> None:
    """Issue a new write key; the old key stops working at once (a revoked source is revived)."""
    from siyu.collect.sources import rotate_write_key

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            source, key = rotate_write_key(conn, ws.workspace_id, name)
    console.print(f"Rotated the write key of '{source.name}'.")
    _show_key(key)


@sources_app.command("revoke")
def sources_revoke(name: str, workspace: WorkspaceOpt = None) -> None:
    """Revoke a source: its write key and webhooks are refused from now on."""
    from siyu.collect.sources import revoke_source

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            source = revoke_source(conn, ws.workspace_id, name)
    console.print(f"Revoked source '{source.name}' ({source.source_id}).")


@sources_app.command("secret")
def sources_secret(
    name: str,
    webhook_secret: Annotated[
        str | None, typer.Option(help="Secret the vendor signs webhooks with.")
    ] = None,
    verify_token: Annotated[
        str | None, typer.Option(help="WhatsApp handshake verify token.")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Set a source's webhook secret and/or WhatsApp verify token."""
    from siyu.collect.sources import set_webhook_secret

    if not webhook_secret and not verify_token:
        raise typer.BadParameter("give --webhook-secret and/or --verify-token")
    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            source = set_webhook_secret(
                conn,
                ws.workspace_id,
                name,
                webhook_secret=webhook_secret,
                verify_token=verify_token,
            )
    console.print(f"Updated the webhook secrets of '{source.name}'.")


def import_file(
    kind: Annotated[str, typer.Argument(help="Importer: shopify-orders, amazon-orders, ...")],
    file: Annotated[Path, typer.Argument(help="The export file.")],
    source: Annotated[
        str | None, typer.Option(help="Source name (default: one named after the importer).")
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="Mapping TOML of the 'generic' importer.")
    ] = None,
    batch_rows: Annotated[
        int, typer.Option(min=1, help="Rows per ingested slice and checkpoint.")
    ] = 100_000,
    workspace: WorkspaceOpt = None,
) -> None:
    """Import a store export through the pipeline: resumable, idempotent, with a summary."""
    from siyu.cli.common import err_console, progress_bar
    from siyu.collect.importers import run_import
    from siyu.collect.importers.generic import from_mapping
    from siyu.collect.sources import ensure_source
    from siyu.registry import registry

    if kind == "generic":
        if mapping is None:
            raise typer.BadParameter("the generic importer needs --mapping map.toml")
        importer = from_mapping(mapping)
    else:
        importer = registry.importers.get(kind)
    vendor = str(getattr(importer, "vendor", "import"))
    source_kind = vendor if vendor in SOURCE_KINDS else "import"
    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            src = ensure_source(conn, ws.workspace_id, source or kind, source_kind)
        interactive = err_console.is_terminal

        def checkpoint(rows: int) -> None:
            if not interactive:  # a log line per checkpoint where no progress bar is drawn
                err_console.print(f"checkpoint: {rows} rows done", highlight=False)

        with progress_bar() as bar:
            task = bar.add_task(f"{kind} {file.name}", total=None)
            summary = run_import(
                rt.pipeline(ws),
                importer,
                file,
                source_id=src.source_id,
                batch_rows=batch_rows,
                progress=lambda n: bar.advance(task, n),
                on_checkpoint=checkpoint,
            )
    if summary.already_done:
        console.print(
            f"{file.name} was already imported completely (sha256 {summary.file_hash[:12]})."
        )
    elif summary.resumed_at:
        console.print(f"Resumed after row {summary.resumed_at + 1} (checkpoint).")
    known = " (already known, not stored again)" if summary.repeated_details else ""
    console.print(
        f"Read {summary.rows:,} rows -> {summary.messages:,} messages this run. "
        f"Totals for this file: stored {summary.stored:,}, duplicates {summary.duplicates:,}, "
        f"repeated customer details {summary.repeated_details:,}{known}, "
        f"quarantined {summary.quarantined:,}."
    )
    if summary.quarantined:
        console.print("See them with 'siyu quarantine list' (origin, row number and reason).")

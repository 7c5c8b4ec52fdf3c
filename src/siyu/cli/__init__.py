"""The siyu command line (Typer). Errors print what is wrong and what to do, never a traceback."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from siyu import __version__
from siyu.cli import collect, data, demo, identity, predict, profiles, segments, tags
from siyu.cli.common import WorkspaceOpt, console, err_console, runtime
from siyu.cli.fission import assists_app, fission_app, groupbuys_app, referrals_app
from siyu.cli.journeys import journeys_app
from siyu.cli.loyalty import coupons_app, loyalty_app
from siyu.cli.messaging import messages_app, suppressions_app, templates_app
from siyu.config import describe, load_settings
from siyu.errors import SiyuError

app = typer.Typer(
    name="siyu",
    help="siyu (私域): the growth engine for cross-border e-commerce and DTC brands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.quarantine_app, name="quarantine")
app.add_typer(data.fx_app, name="fx")
app.add_typer(data.keys_app, name="keys")
app.command("status")(data.status)
app.command("demo")(demo.demo)
app.add_typer(collect.sources_app, name="sources")
app.command("import")(collect.import_file)
app.add_typer(identity.identity_app, name="identity")
app.add_typer(profiles.profile_app, name="profile")
app.add_typer(segments.run_app, name="run")
app.add_typer(segments.segments_app, name="segments")
app.add_typer(tags.tags_app, name="tags")
app.add_typer(predict.predict_app, name="predict")
app.add_typer(loyalty_app, name="loyalty")
app.add_typer(coupons_app, name="coupons")
app.add_typer(predict.reco_app, name="reco")
app.add_typer(journeys_app, name="journeys")
app.add_typer(referrals_app, name="referrals")
app.add_typer(groupbuys_app, name="groupbuys")
app.add_typer(assists_app, name="assists")
app.add_typer(fission_app, name="fission")
app.add_typer(templates_app, name="templates")
app.add_typer(suppressions_app, name="suppressions")
app.add_typer(messages_app, name="messages")


@app.command()
def init(
    workspace: WorkspaceOpt = None,
    name: Annotated[str | None, typer.Option(help="Display name of a new workspace.")] = None,
) -> None:
    """Create or upgrade the database schema and the default workspace."""
    with runtime() as rt:
        result = rt.init(workspace, name=name)
    if result.revision_before != result.revision_after:
        console.print(
            f"Schema upgraded: {result.revision_before or 'empty'} -> {result.revision_after}."
        )
    else:
        console.print(f"Schema is up to date ({result.revision_after}).")
    ws = result.workspace
    if result.created:
        console.print(
            f"Created workspace '{ws.slug}' (base currency {ws.base_currency}, "
            f"region {ws.default_region})."
        )
        console.print("First admin API key (shown once; store it now):")
        console.print(result.admin_key, markup=False, highlight=False)
    else:
        console.print(f"Workspace '{ws.slug}' exists.")


@app.command("config")
def config_cmd(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the settings reference as Markdown.")
    ] = False,
) -> None:
    """Print the effective settings (secrets masked) with their defaults and help."""
    from rich.table import Table

    settings = load_settings()
    if markdown:
        print("| setting | environment | default | help |\n| --- | --- | --- | --- |")
        for name, _value, default, help_ in describe(settings):
            print(f"| `{name}` | `SIYU_{name.upper()}` | `{default}` | {help_} |")
        return
    table = Table(title="siyu settings (env SIYU_<NAME> or siyu.toml)")
    for col in ("name", "value", "default", "help"):
        table.add_column(col, overflow="fold")
    for name, value, default, help_ in describe(settings):
        table.add_row(name, value, default, help_)
    console.print(table)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default SIYU_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default SIYU_PORT).")
    ] = None,
) -> None:
    """Run the HTTP API and console."""
    import uvicorn

    from siyu.api import create_app

    settings = load_settings()
    settings.require_safe_secrets()
    app_ = create_app(settings)
    bind_host = host or settings.host
    bind_port = settings.port if port is None else port
    console.print(f"siyu {__version__} serving at http://{bind_host}:{bind_port}")
    uvicorn.run(
        app_,
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
    )


@app.command()
def version() -> None:
    """Print the siyu version."""
    console.print(__version__)


def main() -> None:
    """Entry point: run the app; turn siyu errors into a message, a hint and exit code 2."""
    try:
        app()
    except SiyuError as exc:
        err_console.print(f"[bold red]Error:[/] {exc.message}", highlight=False)
        err_console.print(f"[bold]What to do:[/] {exc.hint}", highlight=False)
        sys.exit(2)

"""`siyu journeys`: validate, publish, pause, preview and run journeys; library; dead letters."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, err_console, runtime
from siyu.errors import InvalidInput

if TYPE_CHECKING:
    from siyu.journeys.definition import Definition

journeys_app = typer.Typer(help="Customer journeys: triggers, steps, messages, measurement.")

FileArg = Annotated[Path, typer.Argument(help="Journey definition (YAML or JSON).")]
JourneyArg = Annotated[str, typer.Argument(help="Journey id.")]


def _read(path: Path) -> Definition:
    from siyu.journeys.definition import parse

    if not path.is_file():
        raise InvalidInput(f"No file {path}.", hint="Give the path of a journey YAML/JSON file.")
    return parse(path.read_text(encoding="utf-8"), source=str(path))


def _when(value: str | None) -> datetime:
    from siyu.access.workspaces import utcnow

    if value is None:
        return utcnow()
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--now {value!r} is not a time.", hint="Use YYYY-MM-DDTHH:MM (UTC).", field="now"
        ) from None


@journeys_app.command("list")
def list_cmd(workspace: WorkspaceOpt = None) -> None:
    """Journeys of the workspace with status, version and enrollments."""
    from siyu.journeys import service

    with runtime() as rt:
        ws = rt.workspace(workspace)
        items = service.overview(rt.db, ws.workspace_id)
    table = Table(title=f"Journeys of {ws.slug}")
    for col in ("id", "name", "status", "version", "entered", "active", "goal"):
        table.add_column(col)
    for item in items:
        table.add_row(
            *(
                str(item[k])
                for k in ("journey_id", "name", "status", "version", "entered", "active", "goal")
            )
        )
    console.print(table if items else "No journeys yet (siyu journeys library; publish FILE).")


@journeys_app.command("validate")
def validate_cmd(path: FileArg, workspace: WorkspaceOpt = None) -> None:
    """Check a definition (format, steps, templates, rewards) without publishing it."""
    from siyu.journeys import service

    definition = _read(path)
    with runtime() as rt:
        ws = rt.workspace(workspace)
        service.validate(rt.db, ws.workspace_id, definition)
    console.print(f"{path}: journey '{definition.id}' is valid ({len(definition.steps)} steps).")


@journeys_app.command("publish")
def publish_cmd(path: FileArg, workspace: WorkspaceOpt = None) -> None:
    """Publish a definition as the journey's next version (running enrollments keep theirs)."""
    from siyu.access.workspaces import utcnow
    from siyu.journeys import service

    definition = _read(path)
    with runtime() as rt:
        ws = rt.workspace(workspace)
        result = service.publish_definition(rt.db, ws.workspace_id, definition, utcnow())
    if result.created:
        console.print(f"Published '{result.journey_id}' version {result.version}.")
    else:
        console.print(f"'{result.journey_id}' is unchanged (version {result.version}).")


@journeys_app.command("pause")
def pause_cmd(journey: JourneyArg, workspace: WorkspaceOpt = None) -> None:
    """Stop new entries and step execution; due steps wait until resumed."""
    from siyu.access.workspaces import utcnow
    from siyu.journeys import service

    with runtime() as rt:
        service.set_status(rt.db, rt.workspace(workspace).workspace_id, journey, "paused", utcnow())
    console.print(f"Paused '{journey}'.")


@journeys_app.command("resume")
def resume_cmd(journey: JourneyArg, workspace: WorkspaceOpt = None) -> None:
    """Resume a paused journey (events received meanwhile still trigger it)."""
    from siyu.access.workspaces import utcnow
    from siyu.journeys import service

    with runtime() as rt:
        service.set_status(rt.db, rt.workspace(workspace).workspace_id, journey, "active", utcnow())
    console.print(f"Resumed '{journey}'.")


@journeys_app.command("preview")
def preview_cmd(
    journey: Annotated[str, typer.Argument(help="Journey id, or a definition file.")],
    customer: Annotated[
        str, typer.Option("--customer", "-c", help="Customer id, user id or email.")
    ],
    workspace: WorkspaceOpt = None,
) -> None:
    """The path a customer would take if they entered now, with messages rendered."""
    from siyu.access.workspaces import utcnow
    from siyu.journeys import service

    with runtime() as rt:
        ws = rt.workspace(workspace)
        path = Path(journey)
        definition = _read(path) if path.suffix in (".yaml", ".yml", ".json") else None
        steps = service.preview(rt.db, ws, journey, customer, utcnow(), definition)
    for step in steps:
        console.print(f"[bold]{step.step_id}[/] ({step.kind}): {step.detail}", highlight=False)
        if step.message:
            for key in ("subject", "text", "error"):
                if step.message.get(key):
                    console.print(f"    {key}: {step.message[key]}", markup=False, highlight=False)


@journeys_app.command("run")
def run_cmd(
    workspace: WorkspaceOpt = None,
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep running (a worker process) until stopped.")
    ] = False,
    every: Annotated[
        float, typer.Option("--every", min=0.05, help="Seconds between passes with --loop.")
    ] = 5.0,
    now: Annotated[
        str | None, typer.Option("--now", help="Run as of this UTC time (tests, backfills).")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress", help="Print a line to stderr after each batch.")
    ] = False,
) -> None:
    """Evaluate triggers and exits, then execute every due step (once, or in a loop)."""
    from siyu.journeys import service

    def report_batch(steps: int) -> None:
        err_console.print(f"batch: {steps} steps committed", highlight=False)

    with runtime() as rt:
        ws = rt.workspace(workspace)
        while True:
            report = service.run_once(rt, ws, _when(now), report_batch if progress else None)
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items()))
            console.print(
                f"entered {report.entered}, ended {report.exited}, steps {report.steps}"
                + (f" ({outcomes})" if outcomes else ""),
                highlight=False,
            )
            if not loop:
                break
            time.sleep(every)


@journeys_app.command("failures")
def failures_cmd(
    workspace: WorkspaceOpt = None,
    journey: Annotated[str | None, typer.Option("--journey", help="Only this journey.")] = None,
    retry: Annotated[
        bool, typer.Option("--retry", help="Put the dead step runs back in the queue.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to show.")] = 50,
) -> None:
    """Dead-lettered steps with their reasons; --retry re-queues them."""
    from siyu.access.workspaces import utcnow
    from siyu.journeys import service

    with runtime() as rt:
        ws = rt.workspace(workspace)
        if retry:
            n = service.retry(rt.db, ws.workspace_id, utcnow(), journey)
            console.print(f"Re-queued {n} step runs.")
            return
        found = service.failures(rt.db, ws.workspace_id, journey, limit)
    if not found:
        console.print("No failed steps.")
        return
    table = Table(title="Failed journey steps")
    for col in ("journey", "step", "customer", "attempts", "reason", "failed at"):
        table.add_column(col, overflow="fold")
    for f in found:
        table.add_row(
            f"{f.journey_id} v{f.version}",
            f.step_id,
            f.customer_id,
            str(f.attempts),
            f"{f.reason_code}: {f.reason}",
            f"{f.failed_at:%Y-%m-%d %H:%M}" if f.failed_at else "",
        )
    console.print(table)


@journeys_app.command("stats")
def stats_cmd(
    journey: JourneyArg,
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the measurement as JSON.")] = False,
) -> None:
    """Entered, active, goal, messages, conversions, revenue, A/B test and holdout lift."""
    from siyu.journeys import service

    with runtime() as rt:
        m = service.metrics(rt.db, rt.workspace(workspace).workspace_id, journey)
    data = m.as_dict()
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    console.print(
        f"[bold]{journey}[/]: entered {m.entered}, active {m.active}, completed {m.completed}, "
        f"goal {m.goal}, exited {m.exited}, failed {m.failed}",
        highlight=False,
    )
    console.print(
        f"messages: sent {m.sent}, delivered {m.delivered}, opened {m.opened}, "
        f"clicked {m.clicked}, unsubscribed {m.unsubscribed}; conversions {m.conversions}, "
        f"revenue {m.revenue:,.2f}",
        highlight=False,
    )
    for v in m.variants:
        console.print(f"  {v.variant}: {v.converted}/{v.enrolled} = {v.rate:.1%}", highlight=False)
    for c in m.comparisons:
        lift = f"{c.relative_lift:+.1%}" if c.relative_lift is not None else "n/a"
        console.print(
            f"  {c.variant} vs {c.baseline}: {c.difference:+.2%} ({lift}), z={c.z:.2f}, "
            f"p={c.p_value:.3g}",
            highlight=False,
        )


@journeys_app.command("library")
def library_cmd(
    show: Annotated[
        str | None, typer.Option("--show", help="Print this library journey's YAML to edit.")
    ] = None,
) -> None:
    """Ready journeys shipped with siyu (enable one with 'siyu journeys enable ID')."""
    from siyu.journeys.library import find, library

    if show is not None:
        print(find(show).text, end="")
        return
    table = Table(title="Journey library")
    for col in ("id", "name", "description"):
        table.add_column(col, overflow="fold")
    for item in library():
        table.add_row(item.journey_id, item.name, item.description)
    console.print(table)


@journeys_app.command("enable")
def enable_cmd(
    name: Annotated[str, typer.Argument(help="Library journey id (see 'siyu journeys library').")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Publish a library journey, adding the message templates it needs."""
    from siyu.access.workspaces import utcnow
    from siyu.journeys.library import enable

    with runtime() as rt:
        ws = rt.workspace(workspace)
        result, added = enable(rt.db, ws.workspace_id, name, utcnow())
    if added:
        console.print(f"Added templates: {', '.join(added)}.")
    console.print(f"Enabled '{result.journey_id}' (version {result.version}).")

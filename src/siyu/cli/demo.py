"""`siyu demo`: build the synthetic demo brand through the real pipeline, then serve it."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated

import typer

from siyu.cli.common import WorkspaceOpt, console, progress_bar, runtime
from siyu.errors import InvalidInput


def demo(
    customers: Annotated[int, typer.Option(min=100, help="Number of people to generate.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same brand.")] = 7,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Last day of history, YYYY-MM-DD (default today).")
    ] = None,
    workspace: WorkspaceOpt = None,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve it afterwards.")] = True,
) -> None:
    """Build the demo brand (12 markets, 7 sources) and serve it at http://127.0.0.1:8000."""
    from siyu.demo.load import load_demo

    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InvalidInput(
            f"--as-of {as_of!r} is not a date.", hint="Use YYYY-MM-DD.", field="as_of"
        ) from None
    with runtime() as rt:
        result = rt.init(workspace, name="Demo brand")
        if result.admin_key:
            console.print("Admin API key (shown once):")
            console.print(result.admin_key, markup=False, highlight=False)
        with progress_bar() as bar:
            task = bar.add_task(f"Demo brand: {customers:,} people, records", total=None)
            report = load_demo(
                rt,
                result.workspace,
                customers=customers,
                seed=seed,
                as_of=day,
                on_records=lambda n: bar.advance(task, n),
            )
        console.print("Resolving identities (One-ID) ...")
        from siyu.identity.graph import resolve_workspace
        from siyu.segments import run_segments
        from siyu.segments.tagging import run_tags

        with rt.db.write_lock, rt.db.engine.begin() as conn:
            resolved = resolve_workspace(conn, result.workspace.workspace_id)
        console.print(
            f"  {resolved.identifiers:,} identifiers -> {resolved.customers:,} customers "
            f"({resolved.merges:,} merges, {resolved.conflicts:,} conflicts kept apart)."
        )
        console.print("Computing RFM, lifecycle tiers and tags ...")
        as_of_time = None if day is None else datetime.combine(day, time())
        tiers = run_segments(rt.db, result.workspace, as_of=as_of_time)
        tags = run_tags(rt.db, result.workspace, as_of=as_of_time)
        console.print(
            f"  {tiers.customers:,} customers in tiers {tiers.tiers}; "
            f"{tags.memberships:,} tags on customers."
        )
    console.print(
        f"Demo brand ready: {report.read:,} records read, {report.stored:,} stored, "
        f"{report.duplicates:,} duplicates, {report.quarantined:,} quarantined; "
        f"{report.orders:,} orders."
    )
    if serve:
        from siyu.cli import serve as serve_cmd

        serve_cmd(host=None, port=None)

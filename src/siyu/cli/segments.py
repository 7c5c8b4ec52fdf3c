"""`siyu run segments` (RFM and tiers now) and `siyu segments` (saved segments)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, err_console, progress_bar, runtime
from siyu.errors import InvalidInput

if TYPE_CHECKING:
    from siyu.segments import RfmConfig, TierConfig

if TYPE_CHECKING:
    from siyu.segments.lang import TagError

TIER_MODEL_HELP = "Tier model: default, apparel or dtc_rfm (docs/segments.md)."
"""Written out, not built from ``siyu.segments.TIER_MODELS``: importing the models imports Ibis,
which made every ``siyu`` command start half a second later (a test keeps the two in step)."""

run_app = typer.Typer(help="Run a computation now (instead of waiting for its schedule).")


@run_app.command("segments")
def segments(
    workspace: WorkspaceOpt = None,
    model: Annotated[str, typer.Option(help=TIER_MODEL_HELP)] = "default",
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Compute as of YYYY-MM-DD[THH:MM] (UTC).")
    ] = None,
    per_market: Annotated[
        bool, typer.Option("--per-market", help="RFM quintiles within each market.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="database (the one in use) or spark (over --parquet).")
    ] = "database",
    parquet: Annotated[
        Path | None,
        typer.Option(help="With --engine spark: the folder of 'siyu segments export-tables'."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="With --engine spark: where to write the results (default PARQUET/results)."
        ),
    ] = None,
) -> None:
    """Compute RFM and lifecycle tiers for every customer; record tier changes.

    With --engine spark the same computation, and every tag, runs on Apache Spark over exported
    Parquet tables; the results are written as Parquet (nothing is stored in the database).
    """
    from siyu.segments import RfmConfig, TierConfig, run_segments

    try:
        when = datetime.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InvalidInput(
            f"--as-of {as_of!r} is not a date or time.", hint="Use YYYY-MM-DD.", field="as_of"
        ) from None
    if engine == "spark":
        _run_on_spark(parquet, out, when, TierConfig(model=model), RfmConfig(per_market=per_market))
        return
    if engine != "database":
        raise InvalidInput(
            f"Engine {engine!r} is not known.", hint="Use database or spark.", field="engine"
        )
    with runtime() as rt:
        report = run_segments(
            rt.db,
            rt.workspace(workspace),
            as_of=when,
            tier_config=TierConfig(model=model),
            rfm_config=RfmConfig(per_market=per_market),
        )
    console.print(
        f"Run {report.run_id} ({report.model}, as of {report.as_of:%Y-%m-%d %H:%M}): "
        f"{report.customers:,} customers, {report.transitions:,} tier changes."
    )
    for title, counts in (("tier", report.tiers), ("RFM segment", report.rfm_segments)):
        table = Table()
        table.add_column(title)
        table.add_column("customers", justify="right")
        for name, n in counts.items():
            table.add_row(name, f"{n:,}")
        console.print(table)


def _run_on_spark(
    parquet: Path | None,
    out: Path | None,
    when: datetime | None,
    tier_config: TierConfig,
    rfm_config: RfmConfig,
) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from siyu.compute.spark import run_on_spark, spark_session

    if parquet is None:
        raise InvalidInput(
            "--engine spark needs --parquet DIR.",
            hint="Export the tables first: siyu segments export-tables DIR.",
            field="parquet",
        )
    as_of = when or datetime.now(UTC).replace(tzinfo=None)
    result = run_on_spark(spark_session(), parquet, as_of, tier_config, rfm_config)
    folder = out or parquet / "results"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(result.segments, folder / "segments.parquet")
    pq.write_table(result.tags, folder / "tags.parquet")
    console.print(
        f"Spark ({tier_config.model}, as of {as_of:%Y-%m-%d %H:%M}): "
        f"{result.segments.num_rows:,} customers, {result.tags.num_columns - 1} tags; "
        f"wrote {folder / 'segments.parquet'} and {folder / 'tags.parquet'}."
    )
    table = Table()
    table.add_column("tier")
    table.add_column("customers", justify="right")
    for row in pc.value_counts(result.segments["tier"]).to_pylist():
        table.add_row(str(row["values"]), f"{row['counts']:,}")
    console.print(table)


segments_app = typer.Typer(
    help="Saved segments: expressions over tags, tiers, RFM, reachability and attributes."
)

AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Evaluate as of YYYY-MM-DD[THH:MM] (UTC).")
]


def _as_of(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        raise InvalidInput(
            f"--as-of {text!r} is not a date or time.", hint="Use YYYY-MM-DD.", field="as_of"
        ) from None


def _fail_on_tag_error(exc: TagError) -> NoReturn:
    """Print the message with its caret snippet (the CLI's message + hint, plus the place)."""
    err_console.print(f"[bold red]Error:[/] {exc.message}", highlight=False)
    err_console.print(exc.snippet, markup=False, highlight=False)
    err_console.print(f"[bold]What to do:[/] {exc.hint}", highlight=False)
    raise typer.Exit(2)


@segments_app.command("list")
def list_cmd(workspace: WorkspaceOpt = None) -> None:
    """List saved segments with their version and size at the last refresh."""
    from siyu.segments.membership import latest_snapshots
    from siyu.segments.saved import list_segments

    with runtime() as rt:
        ws = rt.workspace(workspace).workspace_id
        segments = list_segments(rt.db, ws)
        snapshots = latest_snapshots(rt.db, ws)
    table = Table()
    for col in ("id", "name", "version", "members", "refreshed", "expression"):
        table.add_column(col, overflow="fold")
    for s in segments:
        snap = snapshots.get(s.segment_id, {})
        members = snap.get("members")
        table.add_row(
            s.segment_id,
            s.name,
            str(s.version),
            "-" if members is None else f"{members:,}",
            str(snap.get("as_of", "never")),
            s.expression,
        )
    console.print(table)


@segments_app.command("create")
def create_cmd(
    segment_id: str,
    expression: str,
    name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
    description: Annotated[str, typer.Option(help="What the segment is for.")] = "",
    replace: Annotated[
        bool, typer.Option("--replace", help="Update the segment if it exists (new version).")
    ] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Save a segment, e.g. 'tag:high_value and tier:loyal and reachable:whatsapp'."""
    from siyu.segments.lang import TagError
    from siyu.segments.saved import create_segment, list_segments, update_segment

    with runtime() as rt:
        ws = rt.workspace(workspace)
        exists = any(s.segment_id == segment_id for s in list_segments(rt.db, ws.workspace_id))
        try:
            if exists and replace:
                seg = update_segment(
                    rt.db,
                    ws,
                    segment_id,
                    expression=expression,
                    name=name,
                    description=description or None,
                )
            else:
                seg = create_segment(
                    rt.db, ws, segment_id, expression, name=name, description=description
                )
        except TagError as exc:
            _fail_on_tag_error(exc)
    console.print(f"Saved {seg.segment_id} v{seg.version}: {seg.expression}", markup=False)


@segments_app.command("show")
def show_cmd(segment_id: str, workspace: WorkspaceOpt = None) -> None:
    """Show a segment: expression, version, dates and its last refresh."""
    from siyu.segments.membership import latest_snapshots
    from siyu.segments.saved import get_segment

    with runtime() as rt:
        ws = rt.workspace(workspace).workspace_id
        seg = get_segment(rt.db, ws, segment_id)
        snap = latest_snapshots(rt.db, ws).get(segment_id)
    for key, value in seg.to_dict().items():
        console.print(f"{key}: {value}", markup=False, highlight=False)
    if snap:
        console.print(
            f"last refresh: {snap['as_of']} (v{snap['version']}): {snap['members']:,} members, "
            f"{snap['entered']:,} entered, {snap['left']:,} left",
            markup=False,
        )
    else:
        console.print("last refresh: never (run 'siyu segments refresh')")


@segments_app.command("count")
def count_cmd(
    expression: Annotated[str, typer.Argument(help="An expression, or a saved segment's id.")],
    as_of: AsOfOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Count the customers an expression (or saved segment) holds now, without saving it."""
    from siyu.segments.lang import TagError
    from siyu.segments.saved import count, list_segments

    with runtime() as rt:
        ws = rt.workspace(workspace).workspace_id
        saved = {s.segment_id: s.expression for s in list_segments(rt.db, ws)}
        try:
            result = count(rt.db, ws, saved.get(expression, expression), as_of=_as_of(as_of))
        except TagError as exc:
            _fail_on_tag_error(exc)
    share = result.members / result.customers if result.customers else 0.0
    console.print(
        f"{result.members:,} of {result.customers:,} customers ({share:.1%}): {result.expression}",
        markup=False,
    )


@segments_app.command("export")
def export_cmd(
    segment_id: str,
    path: Annotated[Path, typer.Argument(help="Output file: .csv or .parquet.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: the suffix).")
    ] = None,
    as_of: AsOfOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write a segment's members with contact details to CSV or Parquet, streaming."""
    from siyu.segments.export import export_segment

    with runtime() as rt, progress_bar() as bar:
        task = bar.add_task(f"export {segment_id}", total=None)
        report = export_segment(
            rt.db,
            rt.workspace(workspace).workspace_id,
            segment_id,
            path,
            fmt=fmt,
            as_of=_as_of(as_of),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(f"Wrote {report.rows:,} customers to {report.path} ({report.format}).")


@segments_app.command("export-tables")
def export_tables_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder to write <table>.parquet files into.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Export the tables segments and tags read, for 'siyu run segments --engine spark'."""
    from siyu.compute.spark import export_tables
    from siyu.segments.tagging import all_tags

    with runtime() as rt:
        ws = rt.workspace(workspace).workspace_id
        counts = export_tables(rt.db, ws, folder, all_tags(rt.db, ws))
    rows = ", ".join(f"{n:,} {name}" for name, n in counts.items() if n)
    console.print(f"Exported to {folder}: {rows or 'no rows'}.")


@segments_app.command("refresh")
def refresh_cmd(as_of: AsOfOpt = None, workspace: WorkspaceOpt = None) -> None:
    """Evaluate every saved segment now; record who entered and left."""
    from siyu.segments.membership import refresh_segments

    with runtime() as rt:
        report = refresh_segments(rt.db, rt.workspace(workspace), as_of=_as_of(as_of))
    table = Table(title=f"Refresh {report.run_id}")
    for col in ("segment", "members", "entered", "left"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    for segment_id, members in sorted(report.members.items()):
        table.add_row(
            segment_id,
            f"{members:,}",
            f"{report.entered.get(segment_id, 0):,}",
            f"{report.left.get(segment_id, 0):,}",
        )
    console.print(table)


@segments_app.command("delete")
def delete_cmd(segment_id: str, workspace: WorkspaceOpt = None) -> None:
    """Delete a saved segment and its current members (its history is kept)."""
    from siyu.segments.saved import delete_segment

    with runtime() as rt:
        delete_segment(rt.db, rt.workspace(workspace), segment_id)
    console.print(f"Deleted segment {segment_id}.")

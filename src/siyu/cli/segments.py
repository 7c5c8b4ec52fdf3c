"""`siyu run segments`: compute RFM and lifecycle tiers now."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, runtime
from siyu.errors import InvalidInput
from siyu.segments import TIER_MODELS, RfmConfig, TierConfig, run_segments

run_app = typer.Typer(help="Run a computation now (instead of waiting for its schedule).")


@run_app.command("segments")
def segments(
    workspace: WorkspaceOpt = None,
    model: Annotated[str, typer.Option(help=f"Tier model: {', '.join(TIER_MODELS)}.")] = "default",
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Compute as of YYYY-MM-DD[THH:MM] (UTC).")
    ] = None,
    per_market: Annotated[
        bool, typer.Option("--per-market", help="RFM quintiles within each market.")
    ] = False,
) -> None:
    """Compute RFM and lifecycle tiers for every customer; record tier changes."""
    try:
        when = datetime.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InvalidInput(
            f"--as-of {as_of!r} is not a date or time.", hint="Use YYYY-MM-DD.", field="as_of"
        ) from None
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

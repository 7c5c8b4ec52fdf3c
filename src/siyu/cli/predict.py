"""`siyu predict`: customer lifetime value scores."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from siyu.cli.common import WorkspaceOpt, console, runtime
from siyu.errors import InvalidInput
from siyu.money import format_money
from siyu.predict.scores import score_customers

predict_app = typer.Typer(help="Predictions: customer lifetime value (BG/NBD + Gamma-Gamma).")


@predict_app.command("clv")
def clv(
    workspace: WorkspaceOpt = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD (default now).")] = None,
    months: Annotated[int, typer.Option(min=1, max=60, help="Horizon in months.")] = 12,
    discount: Annotated[float, typer.Option(help="Monthly discount rate.")] = 0.01,
) -> None:
    """Fit the models on every buyer and store p_alive, expected orders and CLV per customer."""
    try:
        when = datetime.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InvalidInput(f"--as-of {as_of!r} is not a date.", field="as_of") from None
    with runtime() as rt:
        ws = rt.workspace(workspace)
        report = score_customers(rt.db, ws, as_of=when, months=months, discount_rate=discount)
    params = ", ".join(f"{k}={v:.4g}" for k, v in report.purchase_params.items())
    spend = ", ".join(f"{k}={v:.4g}" for k, v in report.spend_params.items())
    console.print(f"Scored {report.customers:,} buyers ({report.model_version}).")
    console.print(f"  BG/NBD {params}; Gamma-Gamma {spend}")
    console.print(
        f"  Expected value of the next {months} months: "
        f"{format_money(report.total_clv_12m, ws.base_currency)}"
    )

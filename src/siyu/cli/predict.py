"""`siyu predict`: customer lifetime value, its holdout validation, churn risk."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, runtime
from siyu.errors import InvalidInput
from siyu.money import format_money
from siyu.predict.scores import score_customers

predict_app = typer.Typer(
    help="Predictions: customer lifetime value (BG/NBD + Gamma-Gamma), validation, churn risk."
)


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{option} {value!r} is not a date.", field=option.lstrip("-"), hint="Use YYYY-MM-DD."
        ) from None


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


@predict_app.command("evaluate")
def evaluate(
    workspace: WorkspaceOpt = None,
    calibration_end: Annotated[
        str | None,
        typer.Option(help="Last day of the calibration period (default: holdout end - 180 days)."),
    ] = None,
    holdout_end: Annotated[
        str | None, typer.Option(help="Last day of the holdout (default: the latest order).")
    ] = None,
    period_days: Annotated[int, typer.Option(min=1, help="Tracking period in days.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print the evaluation as JSON.")] = False,
) -> None:
    """Holdout check of BG/NBD: expected vs actual repeat purchases, per group and over time."""
    from siyu.predict.evaluate import evaluate_store

    with runtime() as rt:
        ws = rt.workspace(workspace)
        result = evaluate_store(
            rt.db,
            ws,
            calibration_end=_date(calibration_end, "--calibration-end"),
            holdout_end=_date(holdout_end, "--holdout-end"),
            period_days=period_days,
        )
    if as_json:
        console.print_json(json.dumps(result.to_dict(), default=str))
        return
    console.print(
        f"Calibration to {result.calibration_end}, holdout to {result.holdout_end}: "
        f"{result.customers:,} customers; BG/NBD "
        + ", ".join(f"{k}={v:.4g}" for k, v in result.params.items())
    )
    console.print(
        f"Repeat purchases in the holdout: actual {result.actual_total:,.0f}, expected "
        f"{result.expected_total:,.1f} ({result.aggregate_error:+.1%}); per customer MAE "
        f"{result.mae:.3f}, RMSE {result.rmse:.3f}, correlation {result.correlation:.3f}"
    )
    groups = Table(title="By calibration repeat purchases (conditional expectations)")
    for name in ("repeat purchases", "customers", "actual mean", "expected mean"):
        groups.add_column(name, justify="right")
    for row in result.by_frequency.itertuples(index=False):
        groups.add_row(
            str(row.frequency),
            f"{row.customers:,}",
            f"{row.actual_mean:.3f}",
            f"{row.expected_mean:.3f}",
        )
    console.print(groups)
    track = Table(title=f"Cumulative repeat purchases in the holdout ({period_days}-day periods)")
    for name in ("period", "actual", "actual cumulative", "expected cumulative"):
        track.add_column(name, justify="right")
    for r in result.tracking.itertuples(index=False):
        track.add_row(
            str(r.period),
            f"{r.actual:,.0f}",
            f"{r.actual_cumulative:,.0f}",
            f"{r.expected_cumulative:,.1f}",
        )
    console.print(track)


def _metrics_row(table: Table, name: str, m: object) -> None:
    from siyu.predict.churn import Metrics

    if isinstance(m, Metrics):
        table.add_row(name, f"{m.roc_auc:.3f}", f"{m.pr_auc:.3f}", f"{m.brier:.3f}")


@predict_app.command("churn")
def churn(
    workspace: WorkspaceOpt = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score as of YYYY-MM-DD (default now).")
    ] = None,
    rules: Annotated[
        bool,
        typer.Option("--rules", help="Use the transparent rule score (small shops) instead."),
    ] = False,
) -> None:
    """Score every buyer's churn risk 0-100 with reasons; report quality on a later window."""
    from siyu.predict.churn import ALERT_ABOVE, RULES, score_churn

    when = _date(as_of, "--as-of")
    with runtime() as rt:
        ws = rt.workspace(workspace)
        report = score_churn(
            rt.db,
            ws,
            as_of=datetime.combine(when, datetime.min.time()) if when else None,
            rules=rules,
        )
    console.print(
        f"Scored the churn risk of {report.customers:,} buyers ({report.model_version}): "
        f"mean {report.mean_risk:.0f}, {report.alerts:,} above {ALERT_ABOVE}."
    )
    if report.method == "rules":
        console.print("Rules (points add up to the score; alert above 80):")
        for rule in RULES:
            console.print(f"  {rule.points:>3}  {rule.text}")
    quality = Table(title="Quality on the latest 90-day window (no purchase, no interaction)")
    for name in ("scores", "ROC-AUC", "PR-AUC", "Brier"):
        quality.add_column(name, justify="right" if name != "scores" else "left")
    _metrics_row(quality, "churn model (calibrated gradient boosting)", report.test)
    _metrics_row(quality, "P(alive) baseline (BG/NBD)", report.baseline)
    _metrics_row(quality, "rule score / 100", report.rules_on_test)
    if quality.row_count:
        console.print(quality)

"""`siyu predict`: customer lifetime value, its holdout validation, churn risk."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, runtime
from siyu.errors import InvalidInput

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
    from siyu.money import format_money
    from siyu.predict.scores import Minimums, score_customers

    try:
        when = datetime.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InvalidInput(f"--as-of {as_of!r} is not a date.", field="as_of") from None
    with runtime() as rt:
        ws = rt.workspace(workspace)
        report = score_customers(
            rt.db,
            ws,
            as_of=when,
            months=months,
            discount_rate=discount,
            minimums=Minimums.from_settings(rt.settings),
        )
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
    from siyu.predict.scores import Minimums

    with runtime() as rt:
        ws = rt.workspace(workspace)
        result = evaluate_store(
            rt.db,
            ws,
            calibration_end=_date(calibration_end, "--calibration-end"),
            holdout_end=_date(holdout_end, "--holdout-end"),
            period_days=period_days,
            minimums=Minimums.from_settings(rt.settings),
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


reco_app = typer.Typer(
    help="Recommendations: compute every customer's top products, look them up, evaluate, "
    "complement rules."
)
rule_app = typer.Typer(help="Complement rules: 'customers who bought X get Y recommended'.")
reco_app.add_typer(rule_app, name="rule")


def _as_of(value: str | None) -> datetime | None:
    when = _date(value, "--as-of")
    return datetime.combine(when, datetime.min.time()) if when else None


@reco_app.command("run")
def reco_run(
    workspace: WorkspaceOpt = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD (default now).")] = None,
    top: Annotated[int, typer.Option(min=1, max=100, help="Products per customer.")] = 10,
) -> None:
    """Fit the item-to-item model and store the top products of every customer."""
    from siyu.predict.reco import recommend_all

    with runtime() as rt:
        ws = rt.workspace(workspace)
        report = recommend_all(rt.db, ws, as_of=_as_of(as_of), top=top)
    console.print(
        f"Stored {report.rows:,} recommendations for {report.customers:,} customers "
        f"({report.model_version}); {report.products:,} products, "
        f"{report.replenishable:,} replenishable."
    )


@reco_app.command("for")
def reco_for(
    customer: Annotated[str, typer.Argument(help="A customer id, email, phone or kind:value.")],
    workspace: WorkspaceOpt = None,
    top: Annotated[int, typer.Option(min=1, max=100, help="How many.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """A customer's stored top products, with the reason for each."""
    from siyu.errors import NotFound
    from siyu.predict.reco import stored_recommendations
    from siyu.profiles import find_customer

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            customer_id = find_customer(conn, ws.workspace_id, customer)
            items = stored_recommendations(conn, ws.workspace_id, customer_id, top)
    if not items:
        raise NotFound(
            f"No recommendations stored for customer {customer_id}.",
            hint="Run 'siyu reco run' first.",
        )
    if as_json:
        console.print_json(json.dumps(items, default=str))
        return
    table = Table(title=f"Recommended for {customer_id} ({items[0]['model_version']})")
    for name in ("#", "product", "sku", "name", "category", "reason", "because of"):
        table.add_column(name)
    for r in items:
        table.add_row(
            str(r["rank"]),
            r["product_id"],
            r["sku"] or "",
            r["name"] or "",
            r["category"] or "",
            r["reason"],
            r["because_of"] or "",
        )
    console.print(table)


@reco_app.command("similar")
def reco_similar(
    product: Annotated[str, typer.Argument(help="A product id or SKU.")],
    workspace: WorkspaceOpt = None,
    top: Annotated[int, typer.Option(min=1, max=100, help="How many.")] = 10,
) -> None:
    """Products most similar to a product (co-purchase, co-view, complement rules)."""
    from siyu.predict.reco import similar_products

    with runtime() as rt:
        found = similar_products(rt.db, rt.workspace(workspace), product, top=top)
    table = Table(title=f"Similar to {product}")
    for name in ("product", "sku", "category", "similarity"):
        table.add_column(name)
    for r in found:
        table.add_row(
            r["product_id"], r["sku"] or "", r["category"] or "", f"{r['similarity']:.3f}"
        )
    console.print(table)


@reco_app.command("evaluate")
def reco_evaluate(
    workspace: WorkspaceOpt = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="End of the test window.")] = None,
    test_days: Annotated[int, typer.Option(min=7, max=365, help="Test window in days.")] = 60,
) -> None:
    """Hit-rate@10 and MAP@10 on a time split, against the popularity baseline."""
    from siyu.predict.reco import evaluate as evaluate_reco

    with runtime() as rt:
        result = evaluate_reco(
            rt.db, rt.workspace(workspace), as_of=_as_of(as_of), test_days=test_days
        )
    table = Table(
        title=f"Purchases of {result.model.customers:,} customers in the {result.test_days} days "
        f"after {result.split:%Y-%m-%d}"
    )
    for name in ("recommender", f"hit-rate@{result.k}", f"MAP@{result.k}"):
        table.add_column(name)
    for name, m in (("item-to-item", result.model), ("popularity", result.popularity)):
        table.add_row(name, f"{m.hit_rate:.3f}", f"{m.map:.4f}")
    console.print(table)


@rule_app.command("add")
def rule_add(
    when_bought: Annotated[str, typer.Argument(help="Product id, SKU or category bought.")],
    recommend: Annotated[str, typer.Argument(help="Product id, SKU or category to recommend.")],
    workspace: WorkspaceOpt = None,
    weight: Annotated[float, typer.Option(min=0.01, max=10, help="Strength of the rule.")] = 1.0,
) -> None:
    """Add a complement rule ("yoga mat" -> apparel); applies from the next 'siyu reco run'."""
    from siyu.predict.reco import add_rule

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            rule_id = add_rule(conn, ws.workspace_id, when_bought, recommend, weight)
    console.print(f"Added {rule_id}: {when_bought} -> {recommend} (weight {weight:g}).")


@rule_app.command("list")
def rule_list(workspace: WorkspaceOpt = None) -> None:
    """The workspace's complement rules."""
    from siyu.predict.reco import list_rules

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            rules = list_rules(conn, ws.workspace_id)
    for r in rules:
        console.print(f"{r['rule_id']}  {r['when_bought']} -> {r['recommend']}  ({r['weight']:g})")
    if not rules:
        console.print("No complement rules.")


@rule_app.command("remove")
def rule_remove(
    rule_id: Annotated[str, typer.Argument(help="The rule id (rr_...).")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Remove a complement rule."""
    from siyu.predict.reco import remove_rule

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            remove_rule(conn, ws.workspace_id, rule_id)
    console.print(f"Removed {rule_id}.")

"""The polars baseline: the same features, RFM, default tiers and every built-in tag, in polars.

Written the way a polars user would: lazy scans of Parquet, one group-by per source table,
window expressions for the quintiles and the workspace AOV, and every tag as a polars boolean
expression. The tags are not re-typed by hand: the built-in rules are parsed by siyu's tag
language and each syntax tree is translated to a polars expression (the node types the
built-ins use: comparisons, and/or/not, in, between, is null, paths, literals and ``count``
over the events with a window), so both engines evaluate exactly the same 219 rules. Event
aggregates are computed in one group-by over the events, like the Ibis compiler does.

Semantics follow siyu's (docs/segments.md): windows are ``as_of - N days < t <= as_of``, days
since are floored whole days, orders exclude refunded and cancelled ones, SQL null logic.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from siyu.predict import PREDICTION_SCHEMA
from siyu.segments.attributes import CONSENT_CHANNELS, DEFAULT_CATEGORIES, category_key, tag_schema
from siyu.segments.catalogue import builtin_tags
from siyu.segments.lang import inline_references
from siyu.segments.lang.compiler import window_start
from siyu.segments.lang.nodes import (
    Between,
    BoolOp,
    Call,
    Compare,
    Expr,
    InList,
    IsNull,
    Literal,
    Not,
    walk,
)
from siyu.segments.lang.nodes import (
    Path as PathNode,
)
from siyu.segments.programmes import EMPTY, PROGRAMME_SCHEMA
from siyu.segments.rfm import SEGMENT_GRID

WINDOWS = (30, 60, 90, 365)


def _in_last(col: str, as_of: datetime, days: int) -> pl.Expr:
    return (pl.col(col) > as_of - timedelta(days=days)) & (pl.col(col) <= as_of)


def _days_since(col: str, as_of: datetime) -> pl.Expr:
    return ((pl.lit(as_of) - pl.col(col)).dt.total_seconds() / 86_400).floor().cast(pl.Int64)


def features(folder: Path, as_of: datetime) -> pl.LazyFrame:
    orders = pl.scan_parquet(folder / "orders.parquet").filter(
        pl.col("customer_id").is_not_null()
        & (pl.col("placed_at") <= as_of)
        & ~pl.col("status").is_in(["refunded", "cancelled"])
    )
    net = (
        pl.col("total_base").cast(pl.Float64)
        - pl.col("refunded_base").cast(pl.Float64).fill_null(0)
    ).fill_null(0.0)
    per_order = orders.group_by("customer_id").agg(
        pl.col("placed_at").min().alias("first_order_at"),
        pl.col("placed_at").max().alias("last_order_at"),
        pl.len().alias("orders_total"),
        *[_in_last("placed_at", as_of, d).sum().alias(f"orders_{d}") for d in WINDOWS],
        *[
            pl.when(_in_last("placed_at", as_of, d))
            .then(net)
            .otherwise(0.0)
            .sum()
            .alias(f"spend_{d}")
            for d in WINDOWS
        ],
    )
    events = pl.scan_parquet(folder / "events.parquet").filter(
        pl.col("customer_id").is_not_null() & (pl.col("timestamp") <= as_of)
    )
    per_event = events.group_by("customer_id").agg(
        pl.col("timestamp").min().alias("first_interaction_at"),
        pl.col("timestamp").max().alias("last_interaction_at"),
        _in_last("timestamp", as_of, 30).sum().alias("interactions_30"),
    )
    customers = pl.scan_parquet(folder / "customers.parquet").filter(
        pl.col("first_seen_at") <= as_of
    )
    counts = ["orders_total", *[f"orders_{d}" for d in WINDOWS], "interactions_30"]
    f = (
        customers.select("customer_id", "country")
        .join(per_order, on="customer_id", how="left")
        .join(per_event, on="customer_id", how="left")
        .with_columns(
            *[pl.col(c).fill_null(0) for c in counts],
            *[pl.col(f"spend_{d}").fill_null(0.0) for d in WINDOWS],
        )
    )
    return f.with_columns(
        days_since_last_order=_days_since("last_order_at", as_of),
        days_since_first_interaction=_days_since("first_interaction_at", as_of),
        days_since_last_interaction=_days_since("last_interaction_at", as_of),
        aov_365=pl.when(pl.col("orders_365") > 0).then(pl.col("spend_365") / pl.col("orders_365")),
    )


def _quintile(col: str, descending: bool) -> pl.Expr:
    """1..5 from the percent rank (ties share the lowest rank), as SQL percent_rank()."""
    rank = pl.col(col).rank("min", descending=descending)
    n = pl.len()
    pct = pl.when(n > 1).then((rank - 1) / (n - 1)).otherwise(0.0)
    return pl.min_horizontal((pct * 5).floor() + 1, pl.lit(5)).cast(pl.Int8)


def rfm(f: pl.LazyFrame) -> pl.LazyFrame:
    buyers = f.filter(pl.col("orders_total") > 0).select(
        "customer_id",
        recency=pl.col("days_since_last_order"),
        frequency=pl.col("orders_365"),
        monetary=pl.col("spend_365"),
    )
    scored = buyers.with_columns(
        r_score=_quintile("recency", descending=True),
        f_score=_quintile("frequency", descending=False),
        m_score=_quintile("monetary", descending=False),
    )
    segment: Any = None
    for name, rs, fs in SEGMENT_GRID:
        cond = pl.col("r_score").is_in(rs) & pl.col("f_score").is_in(fs)
        segment = (
            pl.when(cond).then(pl.lit(name))
            if segment is None
            else segment.when(cond).then(pl.lit(name))
        )
    return scored.with_columns(rfm_segment=segment.otherwise(None))


def tiers(f: pl.LazyFrame) -> pl.LazyFrame:
    reference = pl.col("spend_365").sum() / pl.col("orders_365").sum()
    f = f.with_columns(reference_aov=pl.when(pl.col("orders_365").sum() > 0).then(reference))
    dsfi = pl.col("days_since_first_interaction")
    tier = (
        pl.when(pl.col("days_since_last_interaction") >= 180)
        .then(pl.lit("churned"))
        .when(dsfi < 30)
        .then(pl.lit("new"))
        .when((pl.col("orders_365") > 3) & (pl.col("aov_365") > pl.col("reference_aov")))
        .then(pl.lit("loyal"))
        .when((pl.col("orders_90") >= 1) & (pl.col("orders_90") <= 2))
        .then(pl.lit("active"))
        .when(
            (pl.col("orders_total") == 0)
            & (dsfi >= 30)
            & (dsfi <= 90)
            & (pl.col("interactions_30") >= 3)
        )
        .then(pl.lit("potential"))
        .otherwise(pl.lit("unclassified"))
    )
    return f.select("customer_id", tier=tier, high_value=pl.col("spend_365") > 500)


def segments(folder: Path, as_of: datetime, f: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """customer_id, tier, high_value, RFM: what ``siyu run segments`` computes.

    ``f``: the features when already computed (``features(...).collect().lazy()``).
    """
    f = f if f is not None else features(folder, as_of)
    return tiers(f).join(rfm(f), on="customer_id", how="left")


def attributes(
    folder: Path, as_of: datetime, current: pl.LazyFrame, f: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """The tag attribute table (siyu.segments.attributes) from the Parquet tables."""
    customers = pl.scan_parquet(folder / "customers.parquet").filter(
        pl.col("first_seen_at") <= as_of
    )
    born = pl.col("birthday")
    before = (born.dt.month().cast(pl.Int64) * 100 + born.dt.day()) > as_of.month * 100 + as_of.day
    customers = customers.with_columns(
        age=(as_of.year - born.dt.year().cast(pl.Int64) - before.cast(pl.Int64))
    )
    orders = pl.scan_parquet(folder / "orders.parquet")
    valid = orders.filter(
        (pl.col("placed_at") <= as_of) & ~pl.col("status").is_in(["refunded", "cancelled"])
    )
    lines = pl.scan_parquet(folder / "order_lines.parquet").join(
        valid.select("order_id", "customer_id", "placed_at"), on="order_id"
    )
    recent = pl.col("placed_at") > as_of - timedelta(days=365)
    categories = lines.group_by("customer_id").agg(
        *[
            (recent & (pl.col("category") == c)).sum().alias(f"bought_{category_key(c)}_365")
            for c in DEFAULT_CATEGORIES
        ]
    )
    coupon = (
        orders.filter(_in_last("placed_at", as_of, 365))
        .group_by("customer_id")
        .agg(
            coupon_share_365=(pl.col("coupon").is_not_null() & (pl.col("coupon") != ""))
            .cast(pl.Float64)
            .mean()
        )
    )
    consent = (
        pl.scan_parquet(folder / "consents.parquet")
        .filter((pl.col("timestamp") <= as_of) & (pl.col("purpose") == "marketing"))
        .sort("timestamp")
        .group_by("customer_id", "channel")
        .agg(pl.col("status").last())
        .group_by("customer_id")
        .agg(
            *[
                ((pl.col("channel") == ch) & (pl.col("status") == "granted"))
                .any()
                .alias(f"consent_{ch}")
                for ch in CONSENT_CHANNELS
            ]
        )
    )
    f = (f if f is not None else features(folder, as_of)).drop("country")
    table = customers
    for part in (f, current, categories, coupon, consent):
        table = table.join(part, on="customer_id", how="left")
    # The bulk-built brand has no prediction scores and no loyalty or referral programme: their
    # attributes are null, 0 or false, as in siyu (which joins the empty tables).
    no_scores = {"number": pl.Float64, "string": pl.Utf8, "timestamp": pl.Datetime("us")}
    no_programme = {"number": pl.Int64, "string": pl.Utf8, "boolean": pl.Boolean}
    return table.with_columns(
        *[pl.col(f"bought_{category_key(c)}_365").fill_null(0) for c in DEFAULT_CATEGORIES],
        *[pl.col(f"consent_{ch}").fill_null(False) for ch in CONSENT_CHANNELS],
        *[pl.lit(None, no_scores[kind]).alias(name) for name, kind in PREDICTION_SCHEMA.items()],
        *[
            pl.lit(EMPTY[name], no_programme[kind]).alias(name)
            for name, kind in PROGRAMME_SCHEMA.items()
        ],
    )


class TagCompiler:
    """Translates checked tag trees to polars expressions (the subset the built-ins use)."""

    def __init__(self, as_of: datetime) -> None:
        self.as_of = as_of
        self.aggregates: dict[Call, str] = {}

    def register(self, tree: Expr) -> None:
        for node in walk(tree):
            if isinstance(node, Call) and node not in self.aggregates:
                if node.name != "count":
                    raise NotImplementedError(node.name)
                self.aggregates[node] = f"_agg{len(self.aggregates)}"

    def aggregate_table(self, folder: Path) -> pl.LazyFrame:
        starts = [window_start(c.window, self.as_of) for c in self.aggregates if c.window]
        keep = pl.col("customer_id").is_not_null() & (pl.col("timestamp") <= self.as_of)
        if len(starts) == len(self.aggregates):
            keep = keep & (pl.col("timestamp") > min(starts))
        events = pl.scan_parquet(folder / "events.parquet").filter(keep)
        # Each JSON property is extracted once per event (as the Ibis compiler does).
        events = events.with_columns(
            _category=pl.col("properties").str.json_path_match("$.category")
        )
        columns = []
        for call, name in self.aggregates.items():
            hit = self.condition(call.args[0], "event") if call.args else pl.lit(True)
            if call.window is not None:
                hit = hit & (pl.col("timestamp") > window_start(call.window, self.as_of))
            columns.append(hit.fill_null(False).sum().alias(name))
        return events.group_by("customer_id").agg(columns)

    def value(self, node: Expr, ctx: str) -> pl.Expr:
        if isinstance(node, Literal):
            value = node.value
            return pl.lit(float(value) if isinstance(value, Decimal) else value)
        if isinstance(node, PathNode):
            if ctx == "event" and node.parts == ("properties", "category"):
                return pl.col("_category")
            if len(node.parts) != 1:
                raise NotImplementedError(node.dotted)
            return pl.col(node.parts[0])
        if isinstance(node, Call):
            return pl.col(self.aggregates[node])
        return self.condition(node, ctx)

    def condition(self, node: Expr, ctx: str = "customer") -> pl.Expr:
        if isinstance(node, BoolOp):
            left, right = self.condition(node.left, ctx), self.condition(node.right, ctx)
            return left & right if node.op == "and" else left | right
        if isinstance(node, Not):
            return ~self.condition(node.operand, ctx)
        if isinstance(node, Compare):
            left, right = self.value(node.left, ctx), self.value(node.right, ctx)
            return {
                "==": left == right,
                "!=": left != right,
                "<": left < right,
                "<=": left <= right,
                ">": left > right,
                ">=": left >= right,
            }[node.op]
        if isinstance(node, InList):
            operand = self.value(node.operand, ctx)
            found = (
                pl.when(operand.is_null())
                .then(None)
                .otherwise(operand.is_in([i.value for i in node.items]))
            )
            return ~found if node.negated else found
        if isinstance(node, Between):
            operand = self.value(node.operand, ctx)
            inside = (operand >= self.value(node.low, ctx)) & (
                operand <= self.value(node.high, ctx)
            )
            return ~inside if node.negated else inside
        if isinstance(node, IsNull):
            missing = self.value(node.operand, ctx).is_null()
            return ~missing if node.negated else missing
        return self.value(node, ctx)


def tags(
    folder: Path, as_of: datetime, current: pl.LazyFrame, f: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """customer_id + one boolean column per built-in tag (``f``: features already computed)."""
    definitions = {t.tag_id: t.rule for t in builtin_tags()}
    trees = inline_references(definitions, schema=tag_schema())
    compiler = TagCompiler(as_of)
    for tree in trees.values():
        compiler.register(tree)
    table = attributes(folder, as_of, current, f).join(
        compiler.aggregate_table(folder), on="customer_id", how="left"
    )
    table = table.with_columns(*[pl.col(c).fill_null(0) for c in compiler.aggregates.values()])
    return table.select(
        "customer_id",
        *[compiler.condition(tree).fill_null(False).alias(name) for name, tree in trees.items()],
    )


def run(folder: Path, as_of: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Segments, then tags over them, collected: the polars equivalent of a siyu run.

    The features are collected once and read by both, as siyu's ``compute_all`` does.
    """
    f = features(folder, as_of).collect().lazy()
    current = segments(folder, as_of, f).collect()
    wide = tags(folder, as_of, current.lazy(), f).collect()
    return current, wide

"""A segments run: compute RFM and tiers for every customer, store them, record transitions.

The computation is one Ibis expression (features -> RFM -> tiers) executed by the database in
use; its result comes back once as Arrow and is written with the bulk path. Transitions are
found by one set-based comparison with the previous state, inside the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.access import Workspace
from siyu.compute import WorkspaceTables, tables
from siyu.segments.cache import materialised, unordered
from siyu.segments.features import customer_features, customer_features_columns
from siyu.segments.rfm import RFM_COLUMNS, RfmConfig, rfm
from siyu.segments.tables import customer_segments, segment_runs, tier_history
from siyu.segments.tiers import TierConfig, with_tiers
from siyu.store import Database
from siyu.store.bulk import append, stage, unstage

if TYPE_CHECKING:
    from siyu.segments.catalogue import TagDef


@dataclass(frozen=True)
class RunReport:
    run_id: str
    model: str
    as_of: datetime
    customers: int
    transitions: int
    tiers: dict[str, int]
    rfm_segments: dict[str, int]


def segments_expr(
    db: Database,
    workspace_id: str,
    as_of: datetime,
    tier_config: TierConfig,
    rfm_config: RfmConfig,
) -> ir.Table:
    """Per customer: tier, high-value flag and RFM (null for non-buyers)."""
    return segments_of(tables(db, workspace_id), as_of, tier_config, rfm_config)


def segments_of(
    t: WorkspaceTables,
    as_of: datetime,
    tier_config: TierConfig,
    rfm_config: RfmConfig,
    *,
    features: ir.Table | None = None,
    keep_features: bool = False,
) -> ir.Table:
    """:func:`segments_expr` over any workspace tables (the database's, or Spark's Parquet).

    ``features``: ``customer_features(t, as_of)`` when already computed (and cached).
    ``keep_features``: every feature column too, before the segment columns (one row per
    customer with both, which the tags read in one join; see :func:`compute_all`).
    """
    features = features if features is not None else customer_features(t, as_of)
    scores = rfm(features, as_of, rfm_config).drop("country")
    with_scores = features.left_join(scores, "customer_id").drop("customer_id_right")
    tiered = with_tiers(with_scores, tier_config)
    if keep_features:
        return tiered.select(*features.columns, *SEGMENT_COLUMNS[1:])
    return tiered.select(*SEGMENT_COLUMNS)


#: The columns of a segments result, in order.
SEGMENT_COLUMNS = ("customer_id", "tier", "high_value", *RFM_COLUMNS)


@dataclass(frozen=True)
class Computed:
    """RFM, tiers and tags of every customer, computed together (nothing stored)."""

    segments: pa.Table  # customer_id, tier, high_value, recency ... rfm_segment
    tags: pa.Table  # customer_id + one boolean column per tag


def compute_all(
    t: WorkspaceTables,
    as_of: datetime,
    tags: Sequence[TagDef],
    tier_config: TierConfig | None = None,
    rfm_config: RfmConfig | None = None,
) -> Computed:
    """Segments (``tier_config``'s model) and every tag in ``tags``, as Arrow, in one go.

    The features with the default model's tiers and RFM beside them are cached by the engine
    as one table (a temporary table on DuckDB and PostgreSQL, a cached DataFrame on Spark),
    which the segments result, another model's segments and the tags read: each is computed
    once, however many results use it, and the tags join one per-customer table for features,
    tiers and RFM (at 1M customers each such join builds a million-row hash table). DuckDB
    and PostgreSQL compute the features once inside that table's query (a common table
    expression read twice, which both materialise); Spark caches them first. Rows come in no
    particular order (see :func:`~siyu.segments.cache.unordered`).
    """
    from siyu.segments.tagging import tags_expr

    tier_config = tier_config or TierConfig()
    rfm_config = rfm_config or RfmConfig()
    with ExitStack() as stack:
        stack.enter_context(unordered(t.customers))
        features = customer_features(t, as_of)
        if ibis.get_backend(t.customers).name not in ("duckdb", "postgres"):
            features = stack.enter_context(materialised(features))
        default = segments_of(
            t, as_of, TierConfig(), RfmConfig(), features=features, keep_features=True
        )
        current = stack.enter_context(materialised(default))
        if tier_config == TierConfig() and rfm_config == RfmConfig():
            segments = current.select(*SEGMENT_COLUMNS)
        else:
            cached = current.select(*customer_features_columns())
            segments = segments_of(t, as_of, tier_config, rfm_config, features=cached)
        wide = tags_expr(t, tags, as_of, features=current, current=current)
        return Computed(segments=segments.to_pyarrow(), tags=wide.to_pyarrow())


def run_segments(
    db: Database,
    workspace: Workspace,
    *,
    as_of: datetime | None = None,
    tier_config: TierConfig | None = None,
    rfm_config: RfmConfig | None = None,
) -> RunReport:
    """Compute and store the current segments; record every tier change since the last run."""
    started = datetime.now(UTC).replace(tzinfo=None)
    as_of = as_of or started
    tier_config = tier_config or TierConfig()
    rfm_config = rfm_config or RfmConfig()
    ws = workspace.workspace_id
    run_id = "run_" + secrets.token_hex(8)
    result = segments_expr(db, ws, as_of, tier_config, rfm_config).to_pyarrow()
    n = result.num_rows
    data = pa.table(
        {
            "workspace_id": pa.array([ws] * n, pa.string()),
            "model": pa.array([tier_config.model] * n, pa.string()),
            "customer_id": result["customer_id"],
            "tier": result["tier"],
            "high_value": pc.fill_null(result["high_value"], False),
            "recency": pc.cast(result["recency"], pa.int32()),
            "frequency": pc.cast(result["frequency"], pa.int32()),
            "monetary": pc.cast(result["monetary"], pa.float64()),
            "r_score": pc.cast(result["r_score"], pa.int16()),
            "f_score": pc.cast(result["f_score"], pa.int16()),
            "m_score": pc.cast(result["m_score"], pa.int16()),
            "rfm_segment": result["rfm_segment"],
            "as_of": pa.array([as_of] * n, pa.timestamp("us")),
            "run_id": pa.array([run_id] * n, pa.string()),
        }
    )
    with db.write_lock, db.engine.begin() as conn:
        transitions = _record_transitions(conn, data, ws, tier_config.model, run_id, as_of)
        conn.execute(
            customer_segments.delete().where(
                customer_segments.c.workspace_id == ws,
                customer_segments.c.model == tier_config.model,
            )
        )
        append(conn, customer_segments, data)
        conn.execute(
            segment_runs.insert().values(
                workspace_id=ws,
                run_id=run_id,
                model=tier_config.model,
                as_of=as_of,
                started_at=started,
                finished_at=datetime.now(UTC).replace(tzinfo=None),
                customers=n,
                transitions=transitions,
            )
        )
    return RunReport(
        run_id=run_id,
        model=tier_config.model,
        as_of=as_of,
        customers=n,
        transitions=transitions,
        tiers=_counts(data["tier"]),
        rfm_segments=_counts(data["rfm_segment"]),
    )


def _counts(column: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(column.drop_null())
    return {
        str(v["values"]): int(v["counts"])
        for v in sorted(counts.to_pylist(), key=lambda x: -int(x["counts"]))
    }


def _record_transitions(
    conn: sa.Connection, data: pa.Table, ws: str, model: str, run_id: str, as_of: datetime
) -> int:
    """Insert (customer, from, to) for every customer whose tier differs from the stored one."""
    name = stage(conn, customer_segments, data)
    try:
        result = conn.execute(
            sa.text(
                "INSERT INTO tier_history "
                "(workspace_id, run_id, model, customer_id, from_tier, to_tier, changed_at) "
                f"SELECT :ws, :run_id, :model, n.customer_id, o.tier, n.tier, :as_of "
                f"FROM {name} n LEFT JOIN customer_segments o "
                "ON o.workspace_id = :ws AND o.model = :model AND o.customer_id = n.customer_id "
                "WHERE o.tier IS NULL OR o.tier <> n.tier"
            ),
            {"ws": ws, "run_id": run_id, "model": model, "as_of": as_of},
        )
        return int(result.rowcount or 0)
    finally:
        unstage(conn, name)


__all__ = [
    "SEGMENT_COLUMNS",
    "Computed",
    "RunReport",
    "compute_all",
    "run_segments",
    "segments_expr",
    "segments_of",
    "tier_history",
]

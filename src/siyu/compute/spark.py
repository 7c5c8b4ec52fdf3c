"""RFM, tiers and tags on Apache Spark over a workspace's tables exported to Parquet.

The computation is not rewritten for Spark: the same Ibis expressions that run on DuckDB and
PostgreSQL (``segments_of``, ``tags_expr``) are built over tables that Ibis's pyspark backend
reads from Parquet, so one definition runs on all three engines.

- :func:`export_tables` writes every table the computation reads (one workspace's rows) to
  ``DIR/<table>.parquet`` with the database's own Parquet writer (through Ibis), plus
  ``manifest.json`` (workspace, the tag definitions in force, row counts). JSON columns become
  text; the tag compiler reads text JSON with Spark's native ``get_json_object``.
- :func:`spark_session` starts a local (or ``SIYU_SPARK_MASTER``) session in UTC;
- :func:`run_on_spark` runs ``compute_all``: the features and the default segments model are
  computed once (cached DataFrames) and read by the segments result and by the tags, which use
  the tiers computed there (the database path reads the stored ones); both come back as Arrow.

PySpark is an optional dependency (``pip install 'siyu[spark]'``, Java 17+).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from siyu.compute import WorkspaceTables, tables
from siyu.errors import InvalidInput, SiyuError

if TYPE_CHECKING:
    from siyu.segments.catalogue import TagDef
    from siyu.segments.rfm import RfmConfig
    from siyu.segments.tiers import TierConfig
    from siyu.store.database import Database

#: Tables read by features, RFM, tiers and the tag attributes (profile, orders, events,
#: consent, prediction scores, loyalty and referral programmes).
EXPORTED = (
    "customers",
    "events",
    "orders",
    "order_lines",
    "consents",
    "customer_scores",
    "points_ledger",
    "tier_states",
    "memberships",
    "referrals",
    "group_buy_members",
    "assists",
)
MANIFEST = "manifest.json"


class SparkUnavailable(SiyuError):
    """PySpark (or Java) is not installed."""

    code = "spark_unavailable"
    status = 501
    default_hint = "Install the Spark extra: pip install 'siyu[spark]' (needs Java 17 or newer)."


class BackendTables(WorkspaceTables):
    """Workspace tables on any Ibis backend, some replaced by given expressions."""

    def __init__(
        self, backend: Any, workspace_id: str, overrides: dict[str, Any] | None = None
    ) -> None:
        self._backend = backend
        self.workspace_id = workspace_id
        self._overrides = dict(overrides or {})

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name in self._overrides:
            return self._overrides[name]
        return super().__getattr__(name)

    def with_table(self, name: str, expr: Any) -> BackendTables:
        return BackendTables(self._backend, self.workspace_id, {**self._overrides, name: expr})


@dataclass(frozen=True)
class SparkResult:
    segments: pa.Table  # customer_id, tier, high_value, recency ... rfm_segment
    tags: pa.Table  # customer_id + one boolean column per tag


def export_tables(
    db: Database, workspace_id: str, folder: Path, tags: list[TagDef]
) -> dict[str, int]:
    """Write the workspace's rows of :data:`EXPORTED` and the manifest; rows per table."""
    folder.mkdir(parents=True, exist_ok=True)
    t = tables(db, workspace_id)
    backend = db.ibis()
    counts: dict[str, int] = {}
    for name in EXPORTED:
        expr = getattr(t, name)
        json_columns = [c for c, kind in expr.schema().items() if kind.is_json()]
        if json_columns:
            expr = expr.mutate(**{c: expr[c].cast("string") for c in json_columns})
        backend.to_parquet(expr, folder / f"{name}.parquet")
        counts[name] = int(expr.count().to_pyarrow().as_py())
    manifest = {
        "workspace_id": workspace_id,
        "exported_at": datetime.now().isoformat(timespec="seconds"),
        "rows": counts,
        "tags": [{"tag_id": tag.tag_id, "rule": tag.rule} for tag in tags],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return counts


def spark_session(master: str | None = None) -> Any:
    """A Spark session for the computation: UTC, no UI, few shuffle partitions."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable("PySpark is not installed.") from exc
    # Python workers (if any) must be this interpreter, not whatever 'python3' is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    master = master or os.environ.get("SIYU_SPARK_MASTER", "local[2]")
    builder: Any = SparkSession.builder
    return (
        builder.master(master)
        .appName("siyu")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("SIYU_SPARK_PARTITIONS", "4"))
        .config("spark.driver.memory", os.environ.get("SIYU_SPARK_MEMORY", "2g"))
        .getOrCreate()
    )


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        raise InvalidInput(
            f"{folder} holds no exported tables ({MANIFEST} is missing).",
            hint="Export them first: siyu segments export-tables DIR.",
            field="parquet",
        )
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def spark_tables(session: Any, folder: Path) -> BackendTables:
    """The exported tables as Spark views, scoped to the exported workspace."""
    manifest = read_manifest(folder)
    backend = ibis.pyspark.connect(session)
    for name in EXPORTED:
        backend.read_parquet(str(folder / f"{name}.parquet"), table_name=name)
    return BackendTables(backend, str(manifest["workspace_id"]))


def run_on_spark(
    session: Any,
    folder: Path,
    as_of: datetime,
    tier_config: TierConfig | None = None,
    rfm_config: RfmConfig | None = None,
) -> SparkResult:
    """Segments (``tier_config``'s model) and every exported tag, computed by Spark."""
    from siyu.segments.catalogue import TagDef
    from siyu.segments.run import compute_all

    t = spark_tables(session, folder)
    tags = [
        TagDef(row["tag_id"], "exported", row["tag_id"], row["tag_id"], "", row["rule"])
        for row in read_manifest(folder)["tags"]
    ]
    # One computation: the features and the default model's segments are cached DataFrames
    # read by the segments result and by the tags (before, each Arrow result was its own
    # Spark action over an uncached plan, and the segments were computed twice).
    computed = compute_all(t, as_of, tags, tier_config, rfm_config)
    return SparkResult(segments=computed.segments, tags=computed.tags)


__all__ = [
    "EXPORTED",
    "BackendTables",
    "SparkResult",
    "SparkUnavailable",
    "export_tables",
    "run_on_spark",
    "spark_session",
    "spark_tables",
]

"""`siyu segments export-tables` and the Spark path's input checks (no Spark needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from siyu.cli import app
from siyu.compute.spark import EXPORTED
from siyu.errors import InvalidInput
from siyu.runtime import Runtime
from tests.segments.test_tiers_rfm import buy, view


def test_export_tables_and_spark_input_errors(rt: Runtime, tmp_path: Path) -> None:
    rt.pipeline().ingest(
        [{**view("ann", 2), "properties": {"category": "baby"}}, buy("ann", 3, 40), view("bob", 5)]
    )
    runner = CliRunner()
    folder = tmp_path / "export"
    result = runner.invoke(app, ["segments", "export-tables", str(folder)])
    assert result.exit_code == 0, result.output
    assert "2 customers, 3 events, 1 orders" in " ".join(result.output.split())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["workspace_id"] == rt.workspace().workspace_id
    assert len(manifest["tags"]) >= 231
    assert {f"{name}.parquet" for name in EXPORTED} <= {p.name for p in folder.iterdir()}
    events = pq.read_table(folder / "events.parquet")
    assert events.num_rows == manifest["rows"]["events"] == 3
    # JSON travels as text, which Spark reads with get_json_object.
    assert any('"baby"' in (p or "") for p in events["properties"].to_pylist())

    missing = runner.invoke(app, ["run", "segments", "--engine", "spark"])
    assert missing.exit_code != 0
    assert isinstance(missing.exception, InvalidInput)
    assert "--parquet" in missing.exception.message
    empty = runner.invoke(app, ["run", "segments", "--engine", "spark", "--parquet", str(tmp_path)])
    assert empty.exit_code != 0
    assert isinstance(empty.exception, InvalidInput)
    assert "manifest.json" in empty.exception.message
    unknown = runner.invoke(app, ["run", "segments", "--engine", "flink"])
    assert isinstance(unknown.exception, InvalidInput)
    assert "flink" in unknown.exception.message

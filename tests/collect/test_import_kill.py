"""Kill an import half-way (a real ``siyu import`` process, SIGKILL), run it again: the result
equals an uninterrupted import, with no duplicates and nothing missing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from siyu.collect.tables import import_checkpoints
from siyu.config import load_settings
from siyu.runtime import Runtime
from siyu.store import schema
from tests.collect.shopify_export import write_shopify_orders

ORDERS = 5000


def _siyu() -> str:
    found = shutil.which("siyu", path=str(Path(sys.executable).parent)) or shutil.which("siyu")
    assert found, "the siyu console script is not installed"
    return found


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env.update(SIYU_DATABASE_URL=f"duckdb:///{db}", SIYU_ENV="test")
    return env


def _import(cwd: Path, env: dict[str, str], csv: Path) -> subprocess.CompletedProcess[str]:
    args = [_siyu(), "import", "shopify-orders", str(csv), "--batch-rows", "100"]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True)


def _state(db: Path) -> dict[str, Any]:
    with (
        Runtime(
            load_settings(config_file=db.parent / "none.toml", database_url=f"duckdb:///{db}")
        ) as rt,
        rt.db.engine.connect() as conn,
    ):
        e, o = schema.events, schema.orders

        def rows(query: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in conn.execute(query))

        return {
            "events": rows(sa.select(e.c.message_id, e.c.event, e.c.timestamp)),
            "orders": rows(sa.select(o.c.order_id, o.c.total, o.c.refunded, o.c.status)),
            "lines": rows(sa.select(schema.order_lines.c.order_id, schema.order_lines.c.sku)),
            "consents": conn.execute(
                sa.select(sa.func.count()).select_from(schema.consents)
            ).scalar(),
            "quarantine": conn.execute(
                sa.select(sa.func.count()).select_from(schema.quarantine)
            ).scalar(),
            "checkpoint": conn.execute(
                sa.select(import_checkpoints.c.rows_done, import_checkpoints.c.finished)
            ).all(),
        }


def test_sigkill_half_way_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    csv = write_shopify_orders(tmp_path / "orders_export.csv", ORDERS)
    total_rows = sum(1 + i % 3 for i in range(ORDERS))

    whole, killed = tmp_path / "whole.duckdb", tmp_path / "killed.duckdb"
    for db in (whole, killed):
        subprocess.run([_siyu(), "init"], cwd=tmp_path, env=_env(db), check=True,
                       capture_output=True)  # fmt: skip
    _import(tmp_path, _env(whole), csv)

    args = [_siyu(), "import", "shopify-orders", str(csv), "--batch-rows", "100"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=_env(killed), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None
    checkpoints = 0
    for line in proc.stderr:  # blocks until the importer reports a committed checkpoint
        if line.startswith("checkpoint:"):
            checkpoints += 1
            if checkpoints == 3:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    interrupted = _state(killed)
    [(rows_done, finished)] = interrupted["checkpoint"]
    assert not finished
    assert 0 < rows_done < total_rows
    assert len(interrupted["orders"]) < ORDERS

    resumed = _import(tmp_path, _env(killed), csv)
    assert "Resumed after row" in resumed.stdout

    a, b = _state(whole), _state(killed)
    assert b["orders"] == a["orders"]
    assert len(a["orders"]) == ORDERS
    assert b["events"] == a["events"]
    assert len({m for m, _, _ in b["events"]}) == len(b["events"])
    assert b["lines"] == a["lines"]
    assert len(a["lines"]) == total_rows
    assert (b["consents"], b["quarantine"]) == (a["consents"], a["quarantine"])
    assert b["checkpoint"] == a["checkpoint"] == [(total_rows, True)]

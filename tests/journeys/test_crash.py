"""Kill -9 real worker processes mid-run, restart: nothing lost, nothing sent twice.

DuckDB: one worker (``siyu journeys run --loop``, the command an operator runs) is killed after
a few committed batches and a new pass finishes the work. PostgreSQL: two worker processes share
the queue (``FOR UPDATE SKIP LOCKED``), released together once both are ready; one is killed
mid-run, the other finishes everything the dead worker did not hold, and a later pass (after the
leases expired) reclaims the dead worker's runs. Sends are counted per idempotency key in the
outbox, the channel's own record of what left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from siyu.config import load_settings
from siyu.journeys.worker import evaluate_entries
from siyu.runtime import Runtime
from tests.journeys.helpers import identify, ingest, publish_yaml, track
from tests.journeys.test_send import template

CUSTOMERS = 200
BATCH = 25
T = datetime(2026, 3, 2, 16, 0)
LATER = T + timedelta(hours=1)  # past every lease taken by a pass at T

JOURNEY = """
id: crash
name: Crash test
trigger: {event: {name: Signed Up}}
steps:
  - id: first
    send: {channel: outbox, template: receipt, purpose: transactional}
  - id: second
    send: {channel: outbox, template: receipt, purpose: transactional}
  - id: mark
    set_trait: {name: done, value: true}
"""

# A worker process that imports everything, then waits for the go file, so that two workers
# really start claiming at the same time; it reports each committed batch on stderr.
WORKER = """
import sys, time
from datetime import datetime
from pathlib import Path
from siyu.config import load_settings
from siyu.journeys import service
from siyu.runtime import Runtime

now, go = datetime.fromisoformat(sys.argv[1]), Path(sys.argv[2])
with Runtime(load_settings()) as rt:
    ws = rt.workspace()
    print("ready", file=sys.stderr, flush=True)
    while not go.exists():
        time.sleep(0.01)
    report = service.run_once(
        rt, ws, now, lambda n: print(f"batch: {n}", file=sys.stderr, flush=True)
    )
print(report.steps)
"""


def _siyu() -> str:
    found = shutil.which("siyu", path=str(Path(sys.executable).parent)) or shutil.which("siyu")
    assert found, "the siyu console script is not installed"
    return found


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env.update(SIYU_DATABASE_URL=url, SIYU_ENV="test", SIYU_JOURNEYS_BATCH_SIZE=str(BATCH))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path.cwd()), env.get("PYTHONPATH")]))
    return env


def _prepare(url: str, tmp: Path, *, enroll: bool = False) -> None:
    with Runtime(load_settings(config_file=tmp / "none.toml", database_url=url)) as rt:
        rt.init()
        template(rt, "receipt", "Hello {{ customer.first_name }}.")
        publish_yaml(rt, JOURNEY, T)
        users = [f"c{i:04d}" for i in range(CUSTOMERS)]
        ingest(
            rt,
            [
                *(identify(u, T, first_name=u, email=f"{u}@example.com") for u in users),
                *(track(u, "Signed Up", T) for u in users),
            ],
            at=T,
        )
        if enroll:  # so that no worker's pass can find the queue empty before it is filled
            ws = rt.workspace()
            assert evaluate_entries(rt.db, ws.workspace_id, ws.default_region, T) == (CUSTOMERS, 0)


def _state(url: str) -> dict[str, Any]:
    engine = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1)
        if url.startswith("postgresql://")
        else url
    )
    try:
        with engine.connect() as conn:
            per_key = conn.execute(
                sa.text(
                    "SELECT m.idempotency_key, count(*) FROM outbox o JOIN messages m "
                    "ON m.message_id = o.message_id GROUP BY m.idempotency_key"
                )
            ).all()
            enrollments = conn.execute(
                sa.text("SELECT state, count(*) FROM journey_enrollments GROUP BY state")
            ).all()
            runs = conn.execute(
                sa.text("SELECT state, count(*) FROM journey_step_runs GROUP BY state")
            ).all()
            holders = conn.execute(
                sa.text("SELECT DISTINCT worker FROM journey_step_runs WHERE state = 'running'")
            ).scalars()
            return {
                "outbox": {k: int(n) for k, n in per_key},
                "enrollments": {s: int(n) for s, n in enrollments},
                "runs": {s: int(n) for s, n in runs},
                "holders": set(holders),
            }
    finally:
        engine.dispose()


def _kill_after(proc: subprocess.Popen[str], batches: int) -> None:
    """SIGKILL the worker once it reported ``batches`` committed batches (it is then mid-run)."""
    assert proc.stderr is not None
    guard = threading.Timer(180, proc.kill)  # a worker that never gets there fails, not hangs
    guard.start()
    seen = 0
    try:
        for line in proc.stderr:
            if line.startswith("batch:"):
                seen += 1
                if seen == batches:
                    proc.send_signal(signal.SIGKILL)
                    break
    finally:
        guard.cancel()
    proc.wait(timeout=60)
    assert seen == batches, f"the worker ended after {seen} batches: {proc.stderr.read()}"
    assert proc.returncode == -signal.SIGKILL


def _finish(url: str, tmp: Path) -> str:
    done = subprocess.run(
        [_siyu(), "journeys", "run", "--now", LATER.isoformat()],
        cwd=tmp, env=_env(url), capture_output=True, text=True, check=True, timeout=180,
    )  # fmt: skip
    return done.stdout


def _assert_complete(state: dict[str, Any]) -> None:
    assert state["enrollments"] == {"completed": CUSTOMERS}
    assert len(state["outbox"]) == 2 * CUSTOMERS  # nothing lost
    assert set(state["outbox"].values()) == {1}  # nothing sent twice
    assert state["runs"] == {"done": 3 * CUSTOMERS}


def test_kill_9_worker_then_restart_duckdb(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/siyu.duckdb"
    _prepare(url, tmp_path)
    victim = subprocess.Popen(
        [_siyu(), "journeys", "run", "--now", T.isoformat(), "--progress", "--loop",
         "--every", "0.1"],
        cwd=tmp_path, env=_env(url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _kill_after(victim, 3)
    interrupted = _state(url)
    assert 0 < len(interrupted["outbox"]) < 2 * CUSTOMERS
    assert set(interrupted["outbox"].values()) == {1}

    assert "steps" in _finish(url, tmp_path)
    _assert_complete(_state(url))


def _gated_worker(url: str, tmp: Path, go: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, T.isoformat(), str(go)],
        cwd=tmp, env=_env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    assert proc.stderr.readline().strip() == "ready"
    return proc


@pytest.mark.postgres
def test_two_workers_one_killed_postgres(pg_schema_url: str, tmp_path: Path) -> None:
    url = pg_schema_url
    _prepare(url, tmp_path, enroll=True)
    go = tmp_path / "go"
    survivor = _gated_worker(url, tmp_path, go)
    victim = _gated_worker(url, tmp_path, go)
    go.touch()
    _kill_after(victim, 2)
    out, err = survivor.communicate(timeout=180)
    assert survivor.returncode == 0, err
    assert int(out.strip()) > 0  # the survivor worked alongside the victim

    # At T the dead worker's lease has not expired: the survivor left its runs alone and
    # finished everything else; whatever is still running is held by the dead process only.
    middle = _state(url)
    assert {h.split(":")[1] for h in middle["holders"]} <= {str(victim.pid)}
    assert all(h.startswith(socket.gethostname() + ":") for h in middle["holders"])
    assert set(middle["outbox"].values()) == {1}

    _finish(url, tmp_path)
    _assert_complete(_state(url))

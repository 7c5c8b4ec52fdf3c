"""A real Segment client library (segment-analytics-python) against a real ``siyu serve``.

The library is used unchanged, only pointed at siyu's host: it batches identify, track and alias
calls, gzips them, authenticates with the write key (HTTP Basic) and sends sentAt. The events
must arrive once each, with their timestamps.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from segment.analytics import Client

from siyu.config import load_settings
from siyu.runtime import Runtime
from siyu.store import schema
from tests.subprocesses import free_port, siyu_script


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env["SIYU_DATABASE_URL"] = f"duckdb:///{tmp_path}/serve.duckdb"
    env["SIYU_ENV"] = "test"
    env["COLUMNS"] = "250"
    return env


@pytest.fixture
def served(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """(base URL, write key, process) of a running ``siyu serve`` with one web source."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [siyu_script(), *args],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )

    run("init")
    added = run("sources", "add", "site", "--kind", "web")
    key = re.search(r"\bwk_[A-Za-z0-9_-]+", added.stdout)
    assert key, added.stdout
    port = free_port()
    proc = subprocess.Popen(
        [siyu_script(), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # blocks until uvicorn listens, or the process ends
            seen.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("siyu serve exited before listening:\n" + "".join(seen))
        yield f"http://127.0.0.1:{port}", key.group(0), proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def test_segment_library_calls_arrive_once_with_their_timestamps(
    served: tuple[str, str, subprocess.Popen[str]],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, write_key, server = served
    errors: list[object] = []
    client = Client(
        write_key,
        host=host,
        gzip=True,
        max_retries=2,
        on_error=lambda exc, batch: errors.append(exc),
    )
    when = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)
    client.identify("u1", {"email": "a@example.com"}, timestamp=when, message_id="s-identify")
    for i in range(5):
        client.track(
            "u1",
            "Product Viewed",
            {"product_id": f"p{i}", "price": 9.5, "currency": "USD"},
            timestamp=when.replace(minute=i),
            message_id=f"s-track-{i}",
        )
    client.alias("anon-1", "u1", timestamp=when, message_id="s-alias")
    client.flush()
    # The same message ids again (as a client retry would send them): stored once.
    client.track(
        "u1", "Product Viewed", {"product_id": "p0"}, timestamp=when, message_id="s-track-0"
    )
    client.flush()
    client.join()
    assert errors == []
    # A bad key is refused: the library reports the 401 to on_error.
    bad = Client("wk_wrong", host=host, max_retries=0, on_error=lambda e, b: errors.append(e))
    bad.track("u1", "Product Viewed", {}, message_id="s-bad")
    bad.flush()
    bad.join()
    assert len(errors) == 1
    assert "401" in str(getattr(errors[0], "status", errors[0]))

    server.terminate()  # DuckDB allows one process per file: read after the server is gone
    server.wait(timeout=30)
    monkeypatch.setenv("SIYU_DATABASE_URL", env["SIYU_DATABASE_URL"])
    with Runtime(load_settings(config_file=Path("/nonexistent"))) as rt:
        e = schema.events
        with rt.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(e.c.message_id, e.c.type, e.c.timestamp, e.c.received_at)
            ).all()
    by_id = {r.message_id: r for r in rows}
    assert len(rows) == len(by_id) == 7
    assert by_id["s-identify"].type == "identify"
    assert by_id["s-alias"].type == "alias"
    for i in range(5):
        row = by_id[f"s-track-{i}"]
        # sentAt correction: timestamp = received_at - (sentAt - timestamp). The client's clock
        # is this machine's clock, so the correction is tiny and the original minute survives.
        assert row.timestamp.replace(second=0, microsecond=0) == datetime(2025, 3, 1, 10, i)

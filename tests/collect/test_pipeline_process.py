"""Process-wide state around a multi-chunk ingest: the cyclic collector (and what is restored)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siyu.collect import Pipeline
from siyu.config import Settings, load_settings
from siyu.runtime import Runtime
from tests.collect.helpers import track


def _pipeline(rt: Runtime, chunk: int) -> Pipeline:
    settings = Settings(**{**rt.settings.model_dump(), "ingest_chunk_size": chunk})
    return Pipeline(rt.db, rt.workspace(), settings)


def test_collector_stays_paused_for_the_whole_run_and_is_restored(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector's switch is process-wide: the preparing and the writing thread used to
    pause and re-enable it for each other, and a collection then ran in the middle of a chunk.
    Now no automatic collection runs during a multi-chunk ingest, in either thread."""
    pipeline = _pipeline(rt, 100)
    seen: list[bool] = []
    during: list[int] = []  # collections that started inside a chunk's preparation or write
    collections: list[int] = []
    prepare, write = Pipeline._prepare, Pipeline._write

    def spy_prepare(self: Pipeline, *args: Any) -> Any:
        seen.append(gc.isenabled())
        before = len(collections)
        try:
            return prepare(self, *args)
        finally:
            during.append(len(collections) - before)

    def spy_write(self: Pipeline, *args: Any) -> Any:
        seen.append(gc.isenabled())
        before = len(collections)
        try:
            return write(self, *args)
        finally:
            during.append(len(collections) - before)

    monkeypatch.setattr(Pipeline, "_prepare", spy_prepare)
    monkeypatch.setattr(Pipeline, "_write", spy_write)

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    assert gc.isenabled()
    gc.callbacks.append(count)
    try:
        report = pipeline.ingest([track(f"m{i}", user=f"u{i % 7}") for i in range(450)])
    finally:
        gc.callbacks.remove(count)
    assert report.stored == 450
    assert seen == [False] * 10  # 5 chunks prepared, 5 written
    assert during == [0] * 10
    assert gc.isenabled()


def test_collector_is_restored_after_a_failed_run(rt: Runtime) -> None:
    pipeline = _pipeline(rt, 100)

    def records() -> Any:
        yield from (track(f"m{i}") for i in range(250))
        raise RuntimeError("input broke")

    with pytest.raises(RuntimeError, match="input broke"):
        pipeline.ingest(records())
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled(rt: Runtime) -> None:
    pipeline = _pipeline(rt, 100)
    gc.disable()
    try:
        assert pipeline.ingest([track(f"m{i}") for i in range(250)]).stored == 250
        assert not gc.isenabled()
    finally:
        gc.enable()


def _threads(rt: Runtime) -> int:
    cursor = rt.db.duckdb_cursor()
    try:
        row = cursor.execute("SELECT current_setting('threads')").fetchone()
        assert row is not None
        return int(row[0])
    finally:
        cursor.close()


def test_duckdb_threads_leave_a_core_to_the_preparing_thread(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a multi-chunk ingest DuckDB runs with one thread fewer than the process's cores
    (at least one); its setting is restored after the run. PostgreSQL: nothing is set."""
    if rt.db.kind != "duckdb":
        assert _pipeline(rt, 100).ingest([track(f"m{i}") for i in range(250)]).stored == 250
        return
    cursor = rt.db.duckdb_cursor()
    cursor.execute("SET threads = 3")
    cursor.close()
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    seen: list[int] = []
    write = Pipeline._write

    def spy_write(self: Pipeline, *args: Any) -> Any:
        seen.append(_threads(rt))
        return write(self, *args)

    monkeypatch.setattr(Pipeline, "_write", spy_write)
    assert _pipeline(rt, 100).ingest([track(f"m{i}") for i in range(250)]).stored == 250
    assert seen == [1, 1, 1]
    assert _threads(rt) == 3
    seen.clear()
    assert _pipeline(rt, 100).ingest([track("one")]).stored == 1  # one chunk: inline, unchanged
    assert seen == [3]


@pytest.fixture
def duckdb_rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A runtime on DuckDB only (its ``threads`` setting has no PostgreSQL counterpart)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIYU_ENV", "test")
    url = f"duckdb:///{tmp_path}/siyu.duckdb"
    with Runtime(load_settings(database_url=url, ingest_chunk_size=500)) as runtime:
        runtime.init()
        yield runtime


def test_duckdb_threads_are_restored_by_the_last_of_overlapping_runs(
    duckdb_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siyu.collect.pipeline import _duckdb_threads_for_ingest

    rt = duckdb_rt
    cursor = rt.db.duckdb_cursor()
    cursor.execute("SET threads = 4")
    cursor.close()
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2})
    with _duckdb_threads_for_ingest(rt.db):
        assert _threads(rt) == 2
        with _duckdb_threads_for_ingest(rt.db):
            assert _threads(rt) == 2
        assert _threads(rt) == 2
    assert _threads(rt) == 4
    with pytest.raises(RuntimeError), _duckdb_threads_for_ingest(rt.db):
        raise RuntimeError("a failed run")
    assert _threads(rt) == 4
    # Fewer threads than the target already: left alone.
    cursor = rt.db.duckdb_cursor()
    cursor.execute("SET threads = 1")
    cursor.close()
    with _duckdb_threads_for_ingest(rt.db):
        assert _threads(rt) == 1
    assert _threads(rt) == 1


def test_usable_cores_without_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the platform has no CPU affinity call (macOS, Windows), all of the machine's cores."""
    import os

    from siyu.collect.pipeline import _usable_cores

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert _usable_cores() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert _usable_cores() == 1

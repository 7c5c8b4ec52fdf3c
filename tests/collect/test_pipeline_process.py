"""Process-wide state around a multi-chunk ingest: the cyclic collector (and what is restored)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from siyu.collect import Pipeline
from siyu.config import Settings
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

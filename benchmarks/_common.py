"""Shared helpers for benchmarks: peak memory of a child process, timing, and fresh databases."""

from __future__ import annotations

import os
import resource
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa

T = TypeVar("T")

PG_URL = os.environ.get("SIYU_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


@contextmanager
def pg_schema() -> Iterator[str]:
    """A throw-away PostgreSQL schema; yields a siyu database URL that uses it."""
    name = "bench_" + secrets.token_hex(4)
    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{name}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()

"""Compute engines for analytics: Ibis backends over the deployment's data.

``duckdb`` and ``postgres`` run on the one database (:meth:`siyu.store.Database.ibis`);
``pyspark`` reads the same tables exported to Parquet. Known gaps of an engine are declared as
data in ``GAPS`` so that the conformance suite skips them by name instead of by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from siyu.registry import Registry


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    gaps: frozenset[str] = frozenset()


BUILTIN_ENGINES = (
    Engine("duckdb", "Embedded DuckDB file (default)."),
    Engine("postgres", "PostgreSQL server."),
    Engine("pyspark", "Apache Spark over Parquet exports (local or cluster).", frozenset()),
)


def register(registry: Registry) -> None:
    for engine in BUILTIN_ENGINES:
        registry.engines.register(engine.name, engine)


def engine_of(backend: Any) -> str:
    """The registered engine name of an Ibis backend."""
    return str(backend.name)

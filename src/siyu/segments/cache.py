"""Compute an Ibis table once and read it several times in the same run.

RFM, tiers and tags all read the per-customer features, and the tags read the tiers: computed
together (``compute_all``), each is materialised once by the engine instead of once per query
that uses it. On DuckDB and PostgreSQL that is a temporary table of the backend's connection,
dropped on exit; on Spark a cached DataFrame (``DataFrame.cache``), unpersisted on exit.

Ibis's own ``Table.cache()`` is used on Spark only: with the sqlglot in use its DROP TABLE for
releasing a cached table is not valid SQL on DuckDB. The temporary table's name is generated
here, never taken from user input.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import ibis
import ibis.expr.types as ir


@contextmanager
def materialised(expr: ir.Table) -> Iterator[ir.Table]:
    """``expr`` computed once; yields a table that reads the stored result."""
    backend = ibis.get_backend(expr)
    if backend.name not in ("duckdb", "postgres"):
        cached = expr.cache()
        try:
            yield cached
        finally:
            cached.release()
        return
    name = f"siyu_cache_{secrets.token_hex(8)}"
    table = backend.create_table(name, expr, temp=True)
    try:
        yield table
    finally:
        cursor = backend.raw_sql(f'DROP TABLE IF EXISTS "{name}"')
        if backend.name == "postgres":
            cursor.close()


@contextmanager
def unordered(expr: ir.Table) -> Iterator[None]:
    """Within the block, DuckDB need not keep the tables' row order in what it computes.

    ``preserve_insertion_order = false`` for the connection of ``expr``'s backend, restored
    afterwards. Results keyed by customer do not need that order, and keeping it makes DuckDB
    collect the wide tags result and the cached tables in order, on one thread (at 1M
    customers that was about a fifth of the tag query's wall time). Other engines keep no
    such order anyway: nothing to change.
    """
    backend = ibis.get_backend(expr)
    if backend.name != "duckdb":
        yield
        return
    con = backend.con
    before = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    con.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        value = "true" if before is None or before[0] else "false"
        con.execute(f"SET preserve_insertion_order = {value}")


__all__ = ["materialised", "unordered"]

"""``siyu.compute.arrow_sql``: SQL over Arrow tables in the process's shared in-memory DuckDB."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa
import pytest

from siyu.compute.arrow_sql import arrow_query


def test_a_query_reads_its_tables_by_keyword_and_returns_arrow() -> None:
    people = pa.table({"id": ["b", "a", "b"], "seen": [3, 1, 2]})
    got = arrow_query(
        "SELECT id, min(seen) AS first FROM people GROUP BY id ORDER BY id", people=people
    )
    assert isinstance(got, pa.Table)
    assert got.to_pydict() == {"id": ["a", "b"], "first": [1, 2]}


def test_tables_are_visible_to_their_query_only() -> None:
    arrow_query("SELECT count(*) FROM t", t=pa.table({"x": [1, 2]}))
    got = arrow_query("SELECT sum(x) AS s FROM t", t=pa.table({"x": [10, 20, 30]}))
    assert got.column("s").to_pylist() == [60]
    with pytest.raises(duckdb.CatalogException, match="t"):
        arrow_query("SELECT sum(x) FROM t")  # registered for its query only


def test_strings_sort_by_code_point_as_python_sorts() -> None:
    """The graph build relies on it: its sender ids must come out in Python's order."""
    words = ["é", "z", "Z", "a", "ä", "中", "😀", "", "a\u0000b"]
    got = arrow_query("SELECT w FROM words ORDER BY w", words=pa.table({"w": words}))
    assert got.column("w").to_pylist() == sorted(words)


def test_callers_in_several_threads_each_get_their_own_answer() -> None:
    def total(k: int) -> int:
        table = pa.table({"x": list(range(k))})
        return int(arrow_query("SELECT sum(x) FROM t", t=table).column(0)[0].as_py())

    with ThreadPoolExecutor(max_workers=4) as pool:
        sums = list(pool.map(total, range(1, 200)))
    assert sums == [k * (k - 1) // 2 for k in range(1, 200)]

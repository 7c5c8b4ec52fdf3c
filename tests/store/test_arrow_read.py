"""PostgreSQL results as Arrow through COPY: the same values, nulls and types as the rows the
driver returns, for text that CSV must quote (separators, quotes, line breaks, a lone ``\\.``),
empty strings beside nulls, timestamps with and without fractions, and empty results."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pytest
import sqlalchemy as sa

from siyu.store.arrow_read import _driver_sql, postgres_arrow

TRICKY = [
    "",
    "plain",
    "a,b",
    'say "hi"',
    "line1\nline2",
    "cr\r\nlf",
    "\\.",
    "\\N",
    "NULL",
    "100%",
    "ü-漢字-😀",
    " padded ",
    "t",
    "f",
    ":ws",
]


@pytest.fixture
def pg(pg_schema_url: str) -> Iterator[sa.Connection]:
    engine = sa.create_engine(pg_schema_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _fill(conn: sa.Connection) -> list[dict[str, object]]:
    conn.execute(
        sa.text(
            "CREATE TABLE sample (i bigint, s text, v varchar(40), at timestamp, "
            "tz timestamptz, ok boolean, n numeric, doc jsonb)"
        )
    )
    rng = random.Random(7)
    alphabet = "ab,\"\n\r\\.%:'ü😀 \t"
    texts = TRICKY + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(200)
    ]
    rows: list[dict[str, object]] = []
    for k, text in enumerate(texts):
        rows.append(
            {
                "i": None if k % 7 == 3 else (k - 100) * (1 << 50),
                "s": None if k % 11 == 5 else text,
                "v": text[:40] if k % 2 else None,
                "at": None
                if k % 5 == 4
                else datetime(2025, 3, 1, 10, 0, k % 60, (k * 12345) % 1_000_000 if k % 3 else 0),
                "tz": datetime(2025, 3, 1, k % 24, 0, tzinfo=UTC),
                "ok": None if k % 4 == 0 else k % 2 == 0,
                "n": None if k % 6 == 0 else f"{k}.25",
                "doc": None if k % 9 == 0 else f'{{"k": {k}}}',
            }
        )
    conn.execute(
        sa.text(
            "INSERT INTO sample VALUES (:i, :s, :v, :at, :tz, :ok, CAST(:n AS numeric), "
            "CAST(:doc AS jsonb))"
        ),
        rows,
    )
    return rows


@pytest.mark.postgres
def test_copy_gives_the_driver_s_values_and_types(pg: sa.Connection) -> None:
    _fill(pg)
    sql = (
        "SELECT i, s, v, at, tz, ok, n::text AS n, doc::text AS doc, i::bit(64)::bigint AS j "
        "FROM sample WHERE i IS NULL OR i > :low ORDER BY i NULLS FIRST, s"
    )
    params = {"low": -(1 << 62)}
    got = postgres_arrow(pg, sql, params)
    expected = pg.execute(sa.text(sql), params).mappings().all()
    assert got.num_rows == len(expected) > 200
    assert got.schema.field("i").type == pa.int64()
    assert got.schema.field("s").type == pa.string()
    assert got.schema.field("at").type == pa.timestamp("us")
    assert got.schema.field("tz").type == pa.timestamp("us", tz="UTC")
    assert got.schema.field("ok").type == pa.bool_()
    assert got.to_pylist() == [dict(r) for r in expected]
    # Empty strings stay empty strings, nulls stay nulls.
    texts = got.column("s").to_pylist()
    assert "" in texts
    assert None in texts


@pytest.mark.postgres
def test_an_empty_result_keeps_its_column_types(pg: sa.Connection) -> None:
    _fill(pg)
    got = postgres_arrow(pg, "SELECT i, s, at FROM sample WHERE s = :none", {"none": "absent"})
    assert got.num_rows == 0
    assert got.schema == pa.schema(
        [("i", pa.int64()), ("s", pa.string()), ("at", pa.timestamp("us"))]
    )


def test_parameters_are_rewritten_but_casts_literals_and_percent_signs_are_not() -> None:
    sql = "SELECT x::bigint, 'a:b' AS t FROM y WHERE w = :ws AND s LIKE '10%' AND z = :other"
    assert _driver_sql(sql, {"ws": 1}) == (
        "SELECT x::bigint, 'a:b' AS t FROM y WHERE w = %(ws)s AND s LIKE '10%%' AND z = :other"
    )

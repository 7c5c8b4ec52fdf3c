"""Bulk paths: Arrow tables into the database without per-row statements.

DuckDB reads the Arrow table in place (zero copy); PostgreSQL receives it through ``COPY`` into a
temporary staging table. Both then run one set-based ``INSERT ... SELECT`` so that deduplication
against stored rows (``ON CONFLICT DO NOTHING``) happens inside the database.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

_counter = itertools.count()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(data: pa.Table) -> str:
    return ", ".join(_quote(c) for c in data.column_names)


def arrow_type(column: sa.Column[Any]) -> pa.DataType:
    """The Arrow type the bulk paths give a column's values: times as microsecond timestamps
    (what both engines store), dates, 64-bit integers, numerics as doubles, and everything
    else (strings, JSON documents as text) as strings."""
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us")
    if isinstance(kind, sa.Date):
        return pa.date32()
    if isinstance(kind, sa.Integer):
        return pa.int64()
    if isinstance(kind, sa.Numeric):
        return pa.float64()
    return pa.string()


def _stage_duckdb(conn: sa.Connection, data: pa.Table) -> str:
    name = f"__siyu_stage_{next(_counter)}"
    conn.connection.driver_connection.register(name, data)  # type: ignore[union-attr]
    return name


def _unstage_duckdb(conn: sa.Connection, name: str) -> None:
    import duckdb

    # A statement that failed aborted the transaction: the error on its way up says why
    # (raising here would replace it with "transaction is aborted"), and the rollback drops
    # the registered view with everything else.
    with suppress(duckdb.TransactionException):
        conn.connection.driver_connection.unregister(name)  # type: ignore[union-attr]


def _csv(data: pa.Table) -> memoryview:
    """``data`` as CSV for PostgreSQL's ``COPY ... (FORMAT csv)``."""
    buffer = io.BytesIO()
    # One contiguous chunk per column: pyarrow's CSV writer emitted garbage bytes for a table
    # assembled from many (partly empty) chunks.
    data = data.combine_chunks()
    # all_valid quoting: every non-null value quoted, nulls left empty -> PostgreSQL reads
    # an unquoted empty field as NULL and a quoted empty field as ''.
    pacsv.write_csv(
        data,
        buffer,
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="all_valid"),
    )
    return buffer.getbuffer()


def _copy(conn: sa.Connection, name: str, data: pa.Table, csv: memoryview) -> None:
    """``COPY name (columns of data) FROM STDIN`` with ``csv`` (see :func:`_csv`)."""
    raw = conn.connection.driver_connection
    sql = f"COPY {name} ({_columns(data)}) FROM STDIN (FORMAT csv)"
    with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        step = 1 << 20
        for start in range(0, len(csv), step):
            copy.write(csv[start : start + step])


def _stage_postgres(
    conn: sa.Connection, table: sa.Table, data: pa.Table, csv: memoryview | None = None
) -> str:
    name = f"__siyu_stage_{next(_counter)}"
    # CREATE TABLE AS ... WITH NO DATA copies the column types but none of the target's NOT NULL
    # constraints (which do not apply to a staging copy): one statement instead of one ALTER per
    # NOT NULL column, which a small HTTP batch paid as round trips.
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE {_quote(name)} ON COMMIT DROP AS "
        f"SELECT * FROM {_quote(table.name)} WITH NO DATA"
    )
    _copy(conn, _quote(name), data, _csv(data) if csv is None else csv)
    return name


def append(conn: sa.Connection, table: sa.Table, data: pa.Table) -> int:
    """Append every row of ``data`` to ``table``; return the number of rows written."""
    if data.num_rows == 0:
        return 0
    if conn.dialect.name == "duckdb":
        stage = _stage_duckdb(conn, data)
        try:
            conn.exec_driver_sql(
                f"INSERT INTO {_quote(table.name)} ({_columns(data)}) "
                f"SELECT {_columns(data)} FROM {stage}"
            )
        finally:
            _unstage_duckdb(conn, stage)
    else:
        stage = _stage_postgres(conn, table, data)
        conn.exec_driver_sql(
            f"INSERT INTO {_quote(table.name)} ({_columns(data)}) "
            f"SELECT {_columns(data)} FROM {_quote(stage)}"
        )
        conn.exec_driver_sql(f"DROP TABLE {_quote(stage)}")
    return int(data.num_rows)


class KeyStored(Exception):
    """:func:`insert_all` met a row whose key is stored already (the transaction is void)."""


def insert_all(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    """Insert every row of ``data`` (all of ``table``'s columns), none of whose keys is stored.

    The plain insert of a bulk load that expects only new keys: the key still refuses a
    stored one, without the second look-up and the returned keys of ``ON CONFLICT``. A stored
    key raises :class:`KeyStored`, after which the transaction can only be rolled back (DuckDB
    has no savepoints). DuckDB inserts from an Arrow relation: a view registered for an
    ``INSERT ... SELECT`` could not be unregistered in the aborted transaction.
    """
    if data.num_rows == 0:
        return
    if conn.dialect.name != "duckdb":
        import psycopg

        try:
            _copy(conn, _quote(table.name), data, _csv(data))
        except psycopg.errors.UniqueViolation as exc:
            raise KeyStored(str(exc)) from exc
        return
    import duckdb

    raw = conn.connection.driver_connection
    # insert_into matches by position: the stored table's order, which a migration adding a
    # column can make differ from the schema definition's.
    names = raw.table(table.name).columns  # type: ignore[union-attr]
    if sorted(names) != sorted(data.column_names):
        raise ValueError(f"insert_all needs every column of {table.name}: {names}")
    relation = raw.from_arrow(data).project(", ".join(_quote(n) for n in names))  # type: ignore[union-attr]
    try:
        relation.insert_into(table.name)
    except duckdb.ConstraintException as exc:
        raise KeyStored(str(exc)) from exc


def append_new(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    """Insert rows whose key is not stored yet, without reporting which (see insert_new)."""
    if data.num_rows == 0:
        return
    name = stage(conn, table, data)
    try:
        conn.exec_driver_sql(
            f"INSERT INTO {_quote(table.name)} ({_columns(data)}) "
            f"SELECT {_columns(data)} FROM {name} ON CONFLICT DO NOTHING"
        )
    finally:
        unstage(conn, name)


def insert_new(
    conn: sa.Connection, table: sa.Table, data: pa.Table, key: Sequence[str]
) -> list[tuple[object, ...]]:
    """Insert the rows whose ``key`` is not stored yet; return the keys actually inserted.

    ``data`` must not repeat a key (deduplicate it first). Rows whose key exists are left alone:
    the database decides, so concurrent writers cannot both insert the same key.
    """
    if data.num_rows == 0:
        return []
    duckdb = conn.dialect.name == "duckdb"
    stage = _stage_duckdb(conn, data) if duckdb else _quote(_stage_postgres(conn, table, data))
    try:
        result = conn.exec_driver_sql(_insert_new_sql(conn, table, data, key, stage))
        return [tuple(row) for row in result]
    finally:
        if duckdb:
            _unstage_duckdb(conn, stage)
        else:
            conn.exec_driver_sql(f"DROP TABLE {stage}")


def insert_new_keys(
    conn: sa.Connection, table: sa.Table, data: pa.Table, key: Sequence[str]
) -> pa.Table:
    """:func:`insert_new`, with the inserted keys returned as an Arrow table (columns ``key``).

    For bulk callers: on DuckDB the keys come back as Arrow without a Python tuple per row
    (fetching 50,000 keys through the DB-API cost about 1 us per row, measured).
    """
    if data.num_rows == 0:
        return _empty_keys(table, data, key)
    if conn.dialect.name != "duckdb":
        return _insert_new_keys_postgres(conn, table, data, key)
    stage = _stage_duckdb(conn, data)
    try:
        raw = conn.connection.driver_connection
        inserted = raw.sql(_insert_new_sql(conn, table, data, key, stage))  # type: ignore[union-attr]
        return _empty_keys(table, data, key) if inserted is None else inserted.to_arrow_table()
    finally:
        _unstage_duckdb(conn, stage)


def _insert_new_keys_postgres(
    conn: sa.Connection, table: sa.Table, data: pa.Table, key: Sequence[str]
) -> pa.Table:
    """:func:`insert_new_keys` on PostgreSQL: ``COPY`` straight into ``table`` when no key is
    stored yet, else the staged ``INSERT ... ON CONFLICT DO NOTHING RETURNING``.

    New events are the common case, and a plain ``COPY`` into the table skips the staging
    table, the speculative insertion of ``ON CONFLICT`` and the returned keys (a Python tuple
    each). The ``COPY`` runs under a savepoint: a stored key (a resent batch, a concurrent
    writer's row) fails it with a unique violation before it commits anything, the savepoint
    is rolled back, and the same CSV is staged for the conflict-checking insert.
    """
    import psycopg

    csv = _csv(data)
    savepoint = conn.begin_nested()
    try:
        _copy(conn, _quote(table.name), data, csv)
    except psycopg.errors.UniqueViolation:
        savepoint.rollback()
    else:
        savepoint.commit()
        return data.select(list(key)).combine_chunks()
    stage = _quote(_stage_postgres(conn, table, data, csv))
    try:
        rows = [
            tuple(r) for r in conn.exec_driver_sql(_insert_new_sql(conn, table, data, key, stage))
        ]
    finally:
        conn.exec_driver_sql(f"DROP TABLE {stage}")
    return pa.table(
        {k: pa.array([r[i] for r in rows], data.schema.field(k).type) for i, k in enumerate(key)}
    )


def _empty_keys(table: sa.Table, data: pa.Table, key: Sequence[str]) -> pa.Table:
    return pa.table({k: pa.array([], data.schema.field(k).type) for k in key})


def _insert_new_sql(
    conn: sa.Connection, table: sa.Table, data: pa.Table, key: Sequence[str], stage: str
) -> str:
    keys = ", ".join(_quote(k) for k in key)
    unique_sets = [
        cols for cols in _unique_column_sets(table) if all(c in data.column_names for c in cols)
    ]
    if conn.dialect.name == "duckdb" and len(unique_sets) > 1:
        # DuckDB's ON CONFLICT gets slower with every stored row when a table has more than
        # one unique index (0.014 s -> 0.18 s per 1,000 rows at 60,000 stored, measured),
        # while an anti-join per unique key stays flat. The unique constraints still hold:
        # a concurrent in-process writer inserting the same key fails instead of doubling.
        absent = " AND ".join(
            f"NOT EXISTS (SELECT 1 FROM {_quote(table.name)} t WHERE "
            + " AND ".join(f"t.{_quote(c)} = s.{_quote(c)}" for c in cols)
            + ")"
            for cols in unique_sets
        )
        return (
            f"INSERT INTO {_quote(table.name)} ({_columns(data)}) "
            f"SELECT {_columns(data)} FROM {stage} s WHERE {absent} RETURNING {keys}"
        )
    return (
        f"INSERT INTO {_quote(table.name)} ({_columns(data)}) "
        f"SELECT {_columns(data)} FROM {stage} ON CONFLICT DO NOTHING RETURNING {keys}"
    )


def _unique_column_sets(table: sa.Table) -> list[tuple[str, ...]]:
    """The column sets of the primary key and of every unique constraint of ``table``."""
    sets = [tuple(c.name for c in table.primary_key.columns)] if table.primary_key else []
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            sets.append(tuple(c.name for c in constraint.columns))
    sets += [tuple(c.name for c in ix.columns) for ix in table.indexes if ix.unique]
    return [s for s in dict.fromkeys(sets) if s]


def stage(conn: sa.Connection, like: sa.Table, data: pa.Table) -> str:
    """Make ``data`` readable as a relation in this transaction; return its quoted name.

    Call :func:`unstage` when done. On DuckDB the Arrow table is read in place.
    """
    if conn.dialect.name == "duckdb":
        return _stage_duckdb(conn, data)
    return _quote(_stage_postgres(conn, like, data))


def unstage(conn: sa.Connection, name: str) -> None:
    if conn.dialect.name == "duckdb":
        _unstage_duckdb(conn, name)
    else:
        conn.exec_driver_sql(f"DROP TABLE {name}")


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    data: pa.Table,
    key: Sequence[str],
    updates: dict[str, str],
) -> None:
    """Insert rows of ``data``; where ``key`` exists, apply ``updates`` (column -> SQL expression).

    Expressions may use ``excluded.col`` (the incoming value) and ``t.col`` (the stored value);
    ``t`` is rewritten to the table name, which both engines accept in ``DO UPDATE``.
    ``data`` must not repeat a key.
    """
    if data.num_rows == 0:
        return
    name = stage(conn, table, data)
    try:
        upsert_select(
            conn,
            table,
            data.column_names,
            f"SELECT {_columns(data)} FROM {name}",
            key,
            updates,
        )
    finally:
        unstage(conn, name)


def upsert_select(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    select: str,
    key: Sequence[str],
    updates: dict[str, str],
) -> None:
    """:func:`upsert` of the rows a ``SELECT`` makes (of staged data), in one statement.

    For rows the database derives itself (a group-by over a staged chunk), so that they need
    not be built in Python and staged again. The ``SELECT`` must not repeat a key.
    """
    target = _quote(table.name)
    sets = ", ".join(
        f"{_quote(col)} = {expr.replace('t.', target + '.')}" for col, expr in updates.items()
    )
    conn.exec_driver_sql(
        f"INSERT INTO {target} ({', '.join(_quote(c) for c in columns)}) {select} "
        f"ON CONFLICT ({', '.join(_quote(k) for k in key)}) DO UPDATE SET {sets}"
    )


def insert_select_new(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], select: str
) -> None:
    """Insert the rows a ``SELECT`` makes (of staged data) whose key is not stored yet."""
    conn.exec_driver_sql(
        f"INSERT INTO {_quote(table.name)} ({', '.join(_quote(c) for c in columns)}) {select} "
        "ON CONFLICT DO NOTHING"
    )


def analyze(conn: sa.Connection, rewritten: Sequence[sa.Table], read: Sequence[sa.Table]) -> None:
    """Give PostgreSQL's planner statistics before a bulk statement joins these tables (no-op
    on DuckDB, which keeps its own as it writes).

    ``rewritten`` tables were just filled in this transaction and are analysed always:
    autovacuum only sees committed rows, and they are not committed yet. ``read`` tables are
    analysed only if they never were (a bulk load shortly before; autovacuum can be late or
    off). Without statistics the planner takes every equality filter for one row in 200: at
    50k customers it planned the full run's re-pointing of events as a nested loop over
    336,384 events and 30,882 anchors, which had not finished after 19 minutes.
    """
    if conn.dialect.name != "postgresql":
        return
    names = [t.name for t in read]
    never = (
        set(
            conn.execute(
                sa.text(
                    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                    "AND relname IN :names AND last_analyze IS NULL AND last_autoanalyze IS NULL"
                ).bindparams(sa.bindparam("names", expanding=True)),
                {"names": names},
            ).scalars()
        )
        if names
        else set()
    )
    for name in [*(t.name for t in rewritten), *(n for n in names if n in never)]:
        conn.exec_driver_sql(f"ANALYZE {_quote(name)}")

"""The one database of a deployment: a DuckDB file or a PostgreSQL server.

``Database`` owns the SQLAlchemy engine (transactions, Core statements, migrations) and hands
out Ibis connections to the same data for analytics. For DuckDB one in-process database instance
is shared: SQLAlchemy and Ibis each get cursors of the same root connection, so both see the same
data and no second file lock is taken.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa

from siyu.config import mask_url
from siyu.errors import ConfigError, DatabaseUnavailable

if TYPE_CHECKING:
    import duckdb
    from ibis.backends import BaseBackend

EngineKind = Literal["duckdb", "postgres"]
_CLOSE_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed ``SIYU_DATABASE_URL``."""

    kind: EngineKind
    raw: str
    path: str | None = None  # DuckDB file (":memory:" for a transient database)
    sqlalchemy_url: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme == "duckdb":
            rest = url.split("://", 1)[1]
            path = rest[1:] if rest.startswith("/") else rest
            return cls(kind="duckdb", raw=url, path=path or ":memory:")
        if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
            parts = urlsplit(url)
            options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            sa_url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return cls(kind="postgres", raw=url, sqlalchemy_url=sa_url, options=options)
        raise ConfigError(
            f"Unsupported database URL {url!r}.",
            hint="Use 'duckdb:///path/to/siyu.duckdb' or 'postgresql://user@host:5432/db'.",
            field="database_url",
        )


def _duckdb_connection(raw: duckdb.DuckDBPyConnection) -> Any:
    """A DB-API connection for SQLAlchemy over a DuckDB cursor.

    duckdb-engine's cursors ignore close(); since DuckDB 2.0 a half-read result then blocks the
    next operation on that connection (e.g. registering an Arrow table after ``.first()``).
    Closing a cursor here abandons its unread rows, which is what DB-API close() means.
    """
    from duckdb_engine import ConnectionWrapper, CursorWrapper

    class Cursor(CursorWrapper):
        def close(self) -> None:
            abort = getattr(raw, "abort", None)
            if abort is not None:
                abort()

    class Connection(ConnectionWrapper):
        def cursor(self) -> CursorWrapper:
            return Cursor(raw, self)

    return Connection(raw)


def _bad_size(config: dict[str, str | bool | int | float | list[str]]) -> ConfigError:
    """The error for the DuckDB size setting that DuckDB refused (each is tried on its own)."""
    import duckdb

    for option, value in config.items():
        try:
            duckdb.connect(":memory:", config={option: value}).close()
        except duckdb.Error as exc:
            return ConfigError(
                f"duckdb_{option} {value!r} is not a size: {exc}",
                hint="Use a size such as '4GB' or '512MB' (the memory limit also takes a share "
                "of RAM such as '50%').",
                field=f"duckdb_{option}",
            )
    return ConfigError(f"DuckDB refused its options {config!r}.", field="duckdb_memory_limit")


class Database:
    """Connections to the configured database; create with :meth:`open`, release with close()."""

    def __init__(self, url: DatabaseURL, engine: sa.Engine, root: duckdb.DuckDBPyConnection | None):
        self.url = url
        self.engine = engine
        self._root = root
        self._ibis: BaseBackend | None = None
        # DuckDB allows one writer transaction at a time per table set; serialise bulk writers.
        self.write_lock = threading.RLock()

    @property
    def kind(self) -> EngineKind:
        return self.url.kind

    @classmethod
    def open(
        cls, url: str, *, duckdb_memory_limit: str = "", duckdb_checkpoint_threshold: str = ""
    ) -> Database:
        """Open ``url``. The DuckDB options are sizes ('4GB'; the memory limit also '50%'):
        the cap on DuckDB's buffer pool and the write-ahead log size that triggers a checkpoint
        (empty: DuckDB's defaults)."""
        parsed = DatabaseURL.parse(url)
        if parsed.kind == "duckdb":
            return cls._open_duckdb(parsed, duckdb_memory_limit, duckdb_checkpoint_threshold)
        return cls._open_postgres(parsed)

    @classmethod
    def _open_duckdb(
        cls, parsed: DatabaseURL, memory_limit: str = "", checkpoint_threshold: str = ""
    ) -> Database:
        import duckdb

        assert parsed.path is not None
        if parsed.path != ":memory:":
            Path(parsed.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # DuckDB's own memory default is 80% of RAM, which it fills with cached pages on a big
        # load; a server that shares the machine caps it. Its checkpoint default (16 MiB of WAL)
        # makes every bulk commit a checkpoint that rewrites the growing key indexes.
        config: dict[str, str | bool | int | float | list[str]] = (
            {"memory_limit": memory_limit} if memory_limit else {}
        )
        if checkpoint_threshold:
            config["checkpoint_threshold"] = checkpoint_threshold
        try:
            root = duckdb.connect(parsed.path, config=config)
        except (duckdb.ParserException, duckdb.InvalidInputException) as exc:
            raise _bad_size(config) from exc
        except duckdb.Error as exc:
            raise DatabaseUnavailable(
                f"Cannot open the DuckDB file {parsed.path}: {exc}",
                hint="A DuckDB file can be opened by one process at a time: stop the other "
                "siyu process (e.g. 'siyu serve'), or use PostgreSQL for several processes.",
            ) from exc
        engine = sa.create_engine(
            "duckdb://",
            creator=lambda: _duckdb_connection(root.cursor()),
            poolclass=sa.pool.QueuePool,
            pool_size=4,
            max_overflow=8,
        )
        return cls(parsed, engine, root)

    @classmethod
    def _open_postgres(cls, parsed: DatabaseURL) -> Database:
        engine = sa.create_engine(parsed.sqlalchemy_url, pool_pre_ping=True, pool_size=5)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            engine.dispose()
            raise DatabaseUnavailable(
                f"Cannot connect to PostgreSQL at {mask_url(parsed.raw).split('@')[-1]}: "
                f"{str(exc.orig).strip().splitlines()[0]}",
            ) from exc
        return cls(parsed, engine, None)

    def ibis(self) -> BaseBackend:
        """An Ibis backend on the same data (created on first use)."""
        if self._ibis is None:
            import ibis

            if self._root is not None:
                self._ibis = ibis.duckdb.from_connection(self._root.cursor())
            else:
                parts = urlsplit(self.url.raw)
                kwargs: dict[str, Any] = {
                    "host": parts.hostname or "localhost",
                    "port": parts.port or 5432,
                    "user": unquote(parts.username) if parts.username else None,
                    "password": unquote(parts.password) if parts.password else None,
                    "database": parts.path.lstrip("/") or None,
                }
                kwargs.update(self.url.options)
                self._ibis = ibis.postgres.connect(
                    **{k: v for k, v in kwargs.items() if v is not None}
                )
        return self._ibis

    def duckdb_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of the DuckDB root connection (DuckDB only)."""
        if self._root is None:
            raise RuntimeError("duckdb_cursor() is only available on DuckDB")
        return self._root.cursor()

    def close(self) -> None:
        if self._ibis is not None:
            disconnect = getattr(self._ibis, "disconnect", None)
            if disconnect is not None:
                disconnect()
            self._ibis = None
        self.engine.dispose()
        if self._root is not None:
            import duckdb

            # A background pass of 'siyu serve' (journeys, One-ID, fission) runs in a thread that
            # cancelling its task does not stop; DuckDB refuses to close under a running call, so
            # wait for it to finish (bounded) instead of failing the shutdown.
            deadline = time.monotonic() + _CLOSE_WAIT_SECONDS
            while True:
                try:
                    self._root.close()
                    break
                except duckdb.Error:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            self._root = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

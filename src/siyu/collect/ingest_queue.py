"""The tracking API's ingestion: acknowledge once durable, store asynchronously.

A pipeline call is one transaction with a fixed cost (50-65 ms on DuckDB however few records
it carries). Making each request wait for one, even shared by group commit, put that cost into
every request's latency. As in Segment's API and PostHog's capture, a request is instead
validated (by the route), appended to the durable spool (:mod:`siyu.collect.spool`, one group
fsync for every request waiting at that moment) and answered; one drainer thread reads the
spool back in large batches into :meth:`Pipeline.ingest`.

Exactly once, across crashes:

- a drain batch (frames ``[a, b)``) gets a receipt time ``R``; before storing anything the
  checkpoint records "committing ``[a, b)`` at ``R``" durably; the batch is split into units
  (one per workspace and source, at most ``ingest_chunk_size`` records, so each is one
  pipeline transaction), unit ``u`` stored with ``received_at = R + u`` microseconds; then the
  checkpoint records ``b`` as committed and whole segments before it are deleted;
- on start-up (or a retry after an error) the recorded batch is replayed with the same ``R``: a
  unit whose ``received_at`` is found in the events or the quarantine of its source committed
  before the crash and is skipped. Events dedupe on ``(workspace, messageId)`` anyway (records
  sent without one get a deterministic id from their content), so the check keeps the
  quarantine, which has no natural key, free of duplicates too.

A record the pipeline refuses is quarantined (origin ``api:/v1``) with its reason and position
in its request, as before; only a single call invalid by itself is answered 400 (the route
validates it before spooling, and spools the rejection with its quarantine id). A unit the
pipeline fails on with an unexpected error (a bug, not the database) is retried frame by frame,
and a frame failing alone is quarantined with reason ``ingest_error``, so one bad request cannot
stop the drain. Database errors are retried with back-off; the spool holds the records meanwhile
(and the API answers 503 once it is over ``tracking_spool_max_mb``).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import sqlalchemy as sa

from siyu.access import Workspace, get_workspace_by_id
from siyu.collect.quarantine import OPEN, Rejection, new_quarantine_id
from siyu.collect.spool import Frame, Spool, encode_frame
from siyu.collect.validate import Record, _dump
from siyu.errors import DatabaseUnavailable
from siyu.store import schema
from siyu.store.bulk import append

log = logging.getLogger("siyu.ingest")

ORIGIN = "api:/v1"
DRAIN_DELAY = 0.5  # seconds frames gather before a drain: a pipeline call's cost is mostly fixed
WINDOW_US = 1_000_000  # the frames of one batch were received within this span
MAX_RECORDS = 20_000  # records per drain batch
EPOCH = datetime(1970, 1, 1)


def now_us() -> int:
    return time.time_ns() // 1000


def as_datetime(us: int) -> datetime:
    """Naive UTC, as the database stores receipt times (microsecond precision kept)."""
    return EPOCH + timedelta(microseconds=us)


def spool_directory(settings: Any) -> Path | None:
    """Where the spool lives: ``tracking_spool_dir``, else beside the DuckDB file, else (for
    PostgreSQL) under ``siyu-data/`` by database; None for an in-memory DuckDB."""
    configured = str(getattr(settings, "tracking_spool_dir", "") or "")
    if configured:
        return Path(configured).expanduser()
    url = str(settings.database_url)
    if url.startswith("duckdb:"):
        path = url.split("://", 1)[1] if "://" in url else ""
        path = path[1:] if path.startswith("/") else path
        if not path or path == ":memory:":
            return None
        return Path(path).expanduser().with_name(Path(path).name + ".spool")
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path("siyu-data") / f"spool-{digest}"


@dataclass
class _Part:
    """Records of one frame within a unit (the unit of fallback on an unexpected error)."""

    index: int  # in the batch: a part's own receipt time is R + units + index
    records: list[Record]


@dataclass
class _Unit:
    workspace_id: str
    source_id: str
    parts: list[_Part] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)  # pre-validated 400s
    size: int = 0  # records in parts

    @property
    def records(self) -> list[Record]:
        return [r for p in self.parts for r in p.records]


class _Stopped(Exception):
    """The server is stopping while the database fails: leave the rest in the spool."""


def _transient(exc: BaseException) -> bool:
    """A database that is unreachable or busy, not a problem of the records."""
    return isinstance(
        exc,
        sa.exc.OperationalError
        | sa.exc.InterfaceError
        | sa.exc.DisconnectionError
        | sa.exc.TimeoutError
        | DatabaseUnavailable
        | OSError,
    ) or bool(getattr(exc, "connection_invalidated", False))


class IngestQueue:
    """The spool in front of the pipeline: ``submit`` appends durably, a thread drains."""

    def __init__(
        self,
        runtime: Any,
        directory: Path,
        *,
        max_records: int = MAX_RECORDS,
        drain_delay: float = DRAIN_DELAY,
        segment_bytes: int = 64 * 1024 * 1024,
        temporary: bool = False,
    ) -> None:
        self.runtime = runtime
        self.temporary = temporary  # a directory of our own, removed at close
        self.max_records = max_records
        self.drain_delay = drain_delay
        max_mb = int(getattr(runtime.settings, "tracking_spool_max_mb", 1024))
        self.spool = Spool(
            directory, segment_bytes=segment_bytes, max_pending_bytes=max_mb * 1024 * 1024
        )
        self._workspaces: dict[str, Workspace] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._hurry = threading.Event()
        self._next_r = 0
        self._recover: tuple[int, int, int] | None = None
        self.drain_error: str | None = None
        self.started = False

    # -- request side ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool and start draining (first the batch a crash may have interrupted)."""
        if self.started:
            return
        self._recover = self.spool.open().inflight
        pending = self.spool.status()["pending_records"]
        if pending:
            log.warning(
                "tracking spool %s: storing %s records acknowledged before a restart",
                self.spool.directory,
                pending,
            )
        self._thread = threading.Thread(target=self._run, name="siyu-ingest", daemon=True)
        self._thread.start()
        self.started = True

    async def submit(
        self, workspace_id: str, source_id: str, payloads: list[Any], received_us: int
    ) -> None:
        """Return once ``payloads`` are durable in the spool (IngestUnavailable: 503)."""
        body = orjson.dumps({"w": workspace_id, "s": source_id, "r": payloads}, default=str)
        await self.spool.append(encode_frame(body, len(payloads), received_us), len(payloads))

    async def reject(
        self, workspace_id: str, source_id: str, rejection: Rejection, received_us: int
    ) -> str:
        """Spool the quarantine row of a call refused at once; return its quarantine id."""
        qid = new_quarantine_id()
        row = {
            "id": qid,
            "position": rejection.position,
            "reason_code": rejection.reason_code,
            "reason": rejection.reason,
            "field": rejection.field,
            "payload": rejection.payload,
        }
        body = orjson.dumps({"w": workspace_id, "s": source_id, "q": row})
        await self.spool.append(encode_frame(body, 1, received_us), 1)
        return qid

    def flush(self, timeout: float = 60.0) -> None:
        """Store everything acknowledged so far now (tests, shutdown); TimeoutError if not."""
        self._hurry.set()
        self.spool.wake()
        try:
            if not self.spool.wait_idle(timeout):
                raise TimeoutError(
                    f"the tracking spool was not drained in {timeout} s ({self.drain_error})"
                )
        finally:
            self._hurry.clear()

    def status(self) -> dict[str, Any]:
        return {**self.spool.status(), "drain_error": self.drain_error}

    def close(self, timeout: float = 60.0) -> None:
        """Refuse new records, store what is spooled (bounded), release the spool."""
        if not self.started:
            return
        self.spool.stop_writing()
        self._stop.set()
        self._hurry.set()
        self.spool.wake()
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the tracking spool is not drained; the rest is stored at next start")
            return
        self.spool.close()
        self.started = False
        if self.temporary:
            shutil.rmtree(self.spool.directory, ignore_errors=True)

    # -- drainer ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._recover is not None:
                start, end, received = self._recover
                frames = list(self.spool.frames(start, end))
                if frames:
                    log.info("replaying %d spooled requests interrupted by a crash", len(frames))
                    self._commit(frames, received, check=True)
            # The first batch waits drain_delay too. (Starting from 0.0 compared the delay with
            # the machine's uptime: after an hour up a long delay never applied to it.)
            last = time.monotonic()
            while True:
                batch = self._next_batch(last)
                if batch is None:
                    return
                if batch:
                    last = time.monotonic()
                    self._commit(batch, max(max(f.received_us for f in batch), self._next_r))
        except _Stopped:
            return
        except BaseException as exc:  # keep the reason visible in status; the spool keeps data
            self.drain_error = f"{type(exc).__name__}: {exc}"
            log.exception("the tracking spool drainer stopped")

    def _next_batch(self, last: float) -> list[Frame] | None:
        position = self.spool.committed
        end = self.spool.wait(position, 0.5)
        if end <= position:
            return None if self._stop.is_set() else []
        delay = self.drain_delay - (time.monotonic() - last)
        if delay > 0 and not self._hurry.is_set():
            self._hurry.wait(delay)
            end = self.spool.end
        frames: list[Frame] = []
        records = 0
        for frame in self.spool.frames(position, end):
            if frames and (
                records + frame.records > self.max_records
                or frame.received_us - frames[0].received_us > WINDOW_US
            ):
                break
            frames.append(frame)
            records += frame.records
        if not frames:  # a corrupt range (logged by the spool): nothing in it can be read
            self.spool.checkpoint(end)
            self.spool.committed_to(end, 0)
        return frames

    def _commit(self, frames: list[Frame], received_us: int, *, check: bool = False) -> None:
        """Store one batch exactly once; advance the checkpoint."""
        start, end = frames[0].lsn, frames[-1].end
        self.spool.checkpoint(start, (start, end, received_us))
        units = self._plan(frames)
        delay = 0.5
        while True:
            try:
                self._apply(units, received_us, check)
                break
            except Exception as exc:
                if not _transient(exc):
                    raise
                self.drain_error = f"{type(exc).__name__}: {exc}"
                log.error("storing spooled events failed, retrying in %.1f s: %s", delay, exc)
                if self._stop.is_set():
                    raise _Stopped from exc
                self._stop.wait(delay)
                delay, check = min(delay * 2, 30.0), True
        self.drain_error = None
        parts = sum(len(u.parts) for u in units)
        self._next_r = received_us + len(units) + parts + 1
        self.spool.checkpoint(end)
        self.spool.committed_to(end, sum(f.records for f in frames))

    def _plan(self, frames: list[Frame]) -> list[_Unit]:
        """Units in a deterministic order (a replay must number them the same way)."""
        chunk = int(self.runtime.settings.ingest_chunk_size)
        units: list[_Unit] = []
        open_units: dict[tuple[str, str, bool], _Unit] = {}
        parts = 0
        for frame in frames:
            body = orjson.loads(frame.body)
            ws, src = str(body["w"]), str(body["s"])
            if "q" in body:
                unit = open_units.get((ws, src, True))
                if unit is None:
                    unit = open_units[(ws, src, True)] = _Unit(ws, src)
                    units.append(unit)
                unit.rejections.append({**body["q"], "received_us": frame.received_us})
                continue
            records = [Record(i, p) for i, p in enumerate(body["r"], start=1)]
            while records:
                unit = open_units.get((ws, src, False))
                if unit is None or unit.size >= chunk:
                    unit = open_units[(ws, src, False)] = _Unit(ws, src)
                    units.append(unit)
                room = chunk - unit.size
                unit.parts.append(_Part(parts, records[:room]))
                unit.size += len(unit.parts[-1].records)
                parts += 1
                records = records[room:]
        return units

    def _apply(self, units: list[_Unit], received_us: int, check: bool) -> None:
        for u, unit in enumerate(units):
            if unit.rejections:
                self._store_rejections(unit)
                continue
            r = received_us + u
            part_r = {p.index: received_us + len(units) + p.index for p in unit.parts}
            seen = self._evidence(unit, [r, *part_r.values()]) if check else set()
            if r in seen:
                continue
            if not seen:
                try:
                    self._ingest(unit.workspace_id, unit.source_id, unit.records, r)
                    continue
                except Exception as exc:
                    if _transient(exc):
                        raise
                    log.exception("ingesting %d spooled records failed; retrying per request",
                                  len(unit.records))  # fmt: skip
            for part in unit.parts:  # one frame (request) at a time
                pr = part_r[part.index]
                if pr in seen:
                    continue
                try:
                    self._ingest(unit.workspace_id, unit.source_id, part.records, pr)
                except Exception as exc:
                    if _transient(exc):
                        raise
                    self._quarantine_failed(unit, part, exc, pr)

    def _workspace(self, workspace_id: str) -> Workspace:
        ws = self._workspaces.get(workspace_id)
        if ws is None:
            with self.runtime.db.engine.connect() as conn:
                ws = self._workspaces[workspace_id] = get_workspace_by_id(conn, workspace_id)
        return ws

    def _ingest(self, workspace_id: str, source_id: str, records: list[Record], r: int) -> None:
        self.runtime.pipeline(self._workspace(workspace_id)).ingest(
            records, source_id=source_id, origin=ORIGIN, received_at=as_datetime(r)
        )

    def _evidence(self, unit: _Unit, candidates: list[int]) -> set[int]:
        """Which of these receipt times already have events or quarantined records."""
        times = [as_datetime(r) for r in candidates]
        e, q = schema.events, schema.quarantine
        stmt = sa.union(
            sa.select(e.c.received_at).where(
                e.c.workspace_id == unit.workspace_id,
                e.c.source_id == unit.source_id,
                e.c.received_at.in_(times),
            ),
            sa.select(q.c.received_at).where(
                q.c.workspace_id == unit.workspace_id,
                q.c.source_id == unit.source_id,
                q.c.origin == ORIGIN,
                q.c.received_at.in_(times),
            ),
        )
        with self.runtime.db.engine.connect() as conn:
            found = {row[0] for row in conn.execute(stmt)}
        return {r for r, t in zip(candidates, times, strict=True) if t in found}

    def _store_rejections(self, unit: _Unit) -> None:
        """The quarantine rows of calls answered 400, under the ids the answers carried."""
        q = schema.quarantine
        ids = [row["id"] for row in unit.rejections]
        with self.runtime.db.write_lock, self.runtime.db.engine.begin() as conn:
            have = set(
                conn.execute(sa.select(q.c.quarantine_id).where(q.c.quarantine_id.in_(ids)))
                .scalars()
                .all()
            )
            rows = [row for row in unit.rejections if row["id"] not in have]
            if rows:
                _append_quarantine(conn, unit, rows)

    def _quarantine_failed(self, unit: _Unit, part: _Part, exc: Exception, r: int) -> None:
        """A request the pipeline cannot take: keep its records in the quarantine, replayable."""
        log.error("quarantining %d records the pipeline failed on: %r", len(part.records), exc)
        reason = f"ingestion failed: {type(exc).__name__}: {exc}"[:2000]
        rows = [
            {
                "id": new_quarantine_id(),
                "position": rec.position,
                "reason_code": "ingest_error",
                "reason": reason,
                "field": None,
                "payload": _dump(rec.payload),
                "received_us": r,
            }
            for rec in part.records
        ]
        with self.runtime.db.write_lock, self.runtime.db.engine.begin() as conn:
            _append_quarantine(conn, unit, rows)


def _append_quarantine(conn: sa.Connection, unit: _Unit, rows: list[dict[str, Any]]) -> None:
    n = len(rows)
    data = pa.table(
        {
            "workspace_id": pa.array([unit.workspace_id] * n, pa.string()),
            "quarantine_id": pa.array([r["id"] for r in rows], pa.string()),
            "source_id": pa.array([unit.source_id] * n, pa.string()),
            "origin": pa.array([ORIGIN] * n, pa.string()),
            "position": pa.array([r["position"] for r in rows], pa.int64()),
            "reason_code": pa.array([r["reason_code"] for r in rows], pa.string()),
            "reason": pa.array([r["reason"] for r in rows], pa.string()),
            "field": pa.array([r["field"] for r in rows], pa.string()),
            "payload": pa.array([r["payload"] for r in rows], pa.string()),
            "status": pa.array([OPEN] * n, pa.string()),
            "received_at": pa.array(
                [as_datetime(r["received_us"]) for r in rows], pa.timestamp("us")
            ),
        }
    )
    append(conn, schema.quarantine, data)

"""Group commit for the tracking API: many requests, one pipeline call.

A pipeline call is one transaction with a fixed cost (about 50-65 ms on DuckDB however few
records it carries), so one call per HTTP request caps a server at a few dozen requests per
second. Requests instead put their records on this queue and wait; one writer thread takes
everything queued (up to ``max_records``), ingests it per (workspace, source) in one
``Pipeline.ingest`` call, and answers each request. Under load, batches grow by themselves.

A single call needs to know whether its own record was quarantined and why: quarantined rows
keep the exact payload text, so the writer matches them to the requests that sent them.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from siyu.access import Workspace
from siyu.collect.validate import Record
from siyu.store import schema

ORIGIN = "api:/v1"


@dataclass
class _Item:
    workspace: Workspace
    source_id: str
    records: list[Record]
    future: asyncio.Future[list[dict[str, Any]]]
    loop: asyncio.AbstractEventLoop
    want_rejections: bool
    keys: list[str] = field(default_factory=list)


class IngestQueue:
    """One writer thread feeding ``Pipeline.ingest`` with the records of many requests."""

    def __init__(self, runtime: Any, max_records: int = 20_000) -> None:
        self.runtime = runtime
        self.max_records = max_records
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def submit(
        self, workspace: Workspace, source_id: str, payloads: list[Any], *, single: bool
    ) -> list[dict[str, Any]]:
        """Ingest ``payloads``; return the quarantine rows of those rejected (single calls)."""
        self._start()
        loop = asyncio.get_running_loop()
        item = _Item(
            workspace,
            source_id,
            [Record(i, p) for i, p in enumerate(payloads, start=1)],
            loop.create_future(),
            loop,
            single,
        )
        if single:
            item.keys = [orjson.dumps(p, default=str).decode() for p in payloads]
        self._queue.put(item)
        return await item.future

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=60)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="siyu-ingest", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            items, size = [first], len(first.records)
            while size < self.max_records:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this round
                    break
                items.append(nxt)
                size += len(nxt.records)
            groups: dict[tuple[str, str], list[_Item]] = defaultdict(list)
            for item in items:
                groups[(item.workspace.workspace_id, item.source_id)].append(item)
            for group in groups.values():
                self._flush(group)

    def _flush(self, group: list[_Item]) -> None:
        try:
            head = group[0]
            records = [r for item in group for r in item.records]
            report = self.runtime.pipeline(head.workspace).ingest(
                records, source_id=head.source_id, origin=ORIGIN
            )
            rejected = self._rejected(head.workspace, report.quarantine_ids, group)
        except Exception as exc:  # answer every waiting request, then keep serving
            for item in group:
                item.loop.call_soon_threadsafe(_fail, item.future, exc)
            return
        for item in group:
            mine = [rejected[k] for k in item.keys if k in rejected]
            item.loop.call_soon_threadsafe(_done, item.future, mine)

    def _rejected(
        self, ws: Workspace, ids: list[str], group: list[_Item]
    ) -> dict[str, dict[str, Any]]:
        if not ids or not any(item.want_rejections for item in group):
            return {}
        q = schema.quarantine
        with self.runtime.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    q.c.quarantine_id, q.c.reason_code, q.c.reason, q.c.field, q.c.payload
                ).where(q.c.workspace_id == ws.workspace_id, q.c.quarantine_id.in_(ids))
            )
            return {str(r.payload): dict(r._mapping) for r in rows}


def _done(future: asyncio.Future[list[dict[str, Any]]], value: list[dict[str, Any]]) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[list[dict[str, Any]]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)

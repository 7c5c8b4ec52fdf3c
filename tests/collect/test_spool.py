"""The durable spool of the tracking API (siyu.collect.spool) and its drainer
(siyu.collect.ingest_queue): frames survive crashes, torn tails are cut, segments are deleted
once committed, a full disk answers 503, and a batch interrupted at any point is stored exactly
once (events and quarantine) when the spool is opened again, on DuckDB and PostgreSQL."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from siyu.collect.ingest_queue import IngestQueue, now_us
from siyu.collect.quarantine import Rejection
from siyu.collect.spool import Frame, IngestUnavailable, Spool, encode_frame
from siyu.errors import SiyuError
from siyu.runtime import Runtime
from siyu.store import schema


def _append(spool: Spool, *bodies: bytes) -> None:
    async def go() -> None:
        await asyncio.gather(*(spool.append(encode_frame(b, 1, now_us()), 1) for b in bodies))

    asyncio.run(go())


def _bodies(spool: Spool) -> list[bytes]:
    return [f.body for f in spool.frames(spool.committed, spool.end)]


# -- the spool alone -------------------------------------------------------------------------


def test_frames_are_durable_and_a_torn_tail_is_cut_at_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    _append(spool, b"one", b"two", b"three")
    assert _bodies(spool) == [b"one", b"two", b"three"]
    end = spool.end
    spool.close()
    # A crash in the middle of the next group's write: half a frame at the end of the file.
    [segment] = tmp_path.glob("*.seg")
    with segment.open("ab") as f:
        f.write(encode_frame(b"never acknowledged", 1, 0)[:15])
    again = Spool(tmp_path)
    again.open()
    assert again.end == end
    assert segment.stat().st_size == end
    assert _bodies(again) == [b"one", b"two", b"three"]
    assert again.status()["pending_records"] == 3
    _append(again, b"four")  # appends continue after the cut
    assert _bodies(again)[-1] == b"four"
    again.close()


def test_a_corrupt_frame_is_not_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    _append(spool, b"aaaa", b"bbbb")
    spool.close()
    [segment] = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0xFF  # a flipped bit in the last frame: its CRC no longer matches
    segment.write_bytes(bytes(data))
    again = Spool(tmp_path)
    again.open()
    assert _bodies(again) == [b"aaaa"]
    again.close()


def test_segments_rotate_and_are_deleted_once_committed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)
    spool.open()
    for i in range(12):
        _append(spool, b"x" * 60 + str(i).encode())
    segments = sorted(tmp_path.glob("*.seg"))
    assert len(segments) >= 4
    frames = list(spool.frames(spool.committed, spool.end))
    assert [f.body[-2:].lstrip(b"x") for f in frames] == [str(i).encode() for i in range(12)]
    half = frames[6]
    spool.checkpoint(half.lsn)
    spool.committed_to(half.lsn, 6)
    kept = sorted(tmp_path.glob("*.seg"))
    assert len(kept) < len(segments)
    assert all(int(p.stem) <= half.lsn for p in kept[:1])
    assert [f.body for f in spool.frames(spool.committed, spool.end)] == [
        f.body for f in frames[6:]
    ]
    spool.checkpoint(spool.end)
    spool.committed_to(spool.end, 6)
    assert len(list(tmp_path.glob("*.seg"))) == 1  # only the active segment is left
    spool.close()
    again = Spool(tmp_path, segment_bytes=200)
    assert again.open().committed == frames[-1].end
    assert again.status()["pending_records"] == 0
    again.close()


def test_the_checkpoint_survives_a_torn_slot(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.checkpoint(10, (10, 20, 123))  # seq 1, slot 1
    spool.checkpoint(20)  # seq 2, slot 0
    spool.close()
    path = tmp_path / "checkpoint"
    raw = bytearray(path.read_bytes())
    raw[0:8] = b"\0" * 8  # slot 0 torn by a crash during its write: slot 1 is used
    path.write_bytes(bytes(raw))
    again = Spool(tmp_path)
    ckpt = again.open()
    assert (ckpt.committed, ckpt.inflight) == (10, (10, 20, 123))
    again.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    with pytest.raises(IngestUnavailable, match="in use"):
        Spool(tmp_path).open()
    spool.close()
    Spool(tmp_path).open()


def test_a_full_disk_answers_503_and_keeps_the_file_consistent(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    _append(spool, b"before")

    def full(fd: int, data: bytes) -> int:
        os.write(fd, data[:7])  # part of it reached the file before the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    spool._os_write = full  # type: ignore[method-assign]
    with pytest.raises(IngestUnavailable) as refused:
        _append(spool, b"lost")
    assert refused.value.status == 503
    assert refused.value.details["retry_after"] >= 1
    assert "disk is full" in refused.value.message
    assert spool.status()["write_error"] == "the disk is full"
    del spool._os_write  # type: ignore[attr-defined]
    _append(spool, b"after")
    assert _bodies(spool) == [b"before", b"after"]
    spool.close()
    again = Spool(tmp_path)
    again.open()
    assert _bodies(again) == [b"before", b"after"]
    again.close()


def test_a_backlog_over_the_limit_answers_503(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_pending_bytes=100)
    spool.open()
    _append(spool, b"x" * 120)
    with pytest.raises(IngestUnavailable, match="not yet stored") as refused:
        _append(spool, b"y")
    assert refused.value.details["retry_after"] >= 1
    spool.checkpoint(spool.end)
    spool.committed_to(spool.end, 1)
    _append(spool, b"y")
    spool.close()


# -- the drainer, on both engines ----------------------------------------------------------


def _submit(queue: IngestQueue, ws: str, src: str, batches: list[list[Any]]) -> None:
    async def go() -> None:
        for payloads in batches:
            await queue.submit(ws, src, payloads, now_us())

    asyncio.run(go())


def _reject(queue: IngestQueue, ws: str, src: str) -> str:
    rejection = Rejection(1, "invalid", "userId: required", '{"event":"Bad"}', "userId")
    return asyncio.run(queue.reject(ws, src, rejection, now_us()))


def _counts(rt: Runtime) -> tuple[list[str], list[tuple[str, int]]]:
    e, q = schema.events, schema.quarantine
    with rt.db.engine.connect() as conn:
        events = sorted(r[0] for r in conn.execute(sa.select(e.c.message_id)))
        quarantined = sorted(
            (str(r[0]), int(r[1])) for r in conn.execute(sa.select(q.c.reason_code, q.c.position))
        )
    return events, quarantined


def _messages(prefix: str, n: int) -> list[Any]:
    good: list[Any] = [
        {"type": "track", "userId": "u1", "event": "Page Viewed", "messageId": f"{prefix}{i}"}
        for i in range(n)
    ]
    no_id = {"type": "track", "userId": f"anon-{prefix}", "event": "Page Viewed"}
    return [*good, no_id, {"type": "track", "event": "No sender"}]


@pytest.fixture
def source(rt: Runtime) -> tuple[str, str]:
    from siyu.collect.sources import create_source

    ws = rt.workspace()
    with rt.db.engine.begin() as conn:
        src, _ = create_source(conn, ws.workspace_id, "site", "web")
    return ws.workspace_id, src.source_id


class Crash(BaseException):
    """Stands for the process dying at this point (nothing after it runs)."""


@pytest.mark.parametrize(("crash_at", "big"), [("before_storing", 3), ("after_storing", 3),
                                              ("after_storing", 1200)])  # fmt: skip
def test_a_batch_interrupted_by_a_crash_is_stored_exactly_once(
    rt: Runtime,
    tmp_path: Path,
    source: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    crash_at: str,
    big: int,
) -> None:
    """``big``: a request larger than ingest_chunk_size (500 here) spans several units."""
    ws, src = source
    queue = IngestQueue(rt, tmp_path / "spool", drain_delay=60)  # drains only when told
    queue.start()
    _submit(queue, ws, src, [_messages("a", big), _messages("b", 2)])
    qid = _reject(queue, ws, src)
    real_checkpoint = queue.spool.checkpoint
    real_apply = queue._apply

    def checkpoint(committed: int, inflight: tuple[int, int, int] | None = None) -> None:
        if inflight is None and crash_at == "after_storing":
            raise Crash  # stored and committed, but the checkpoint never says so
        real_checkpoint(committed, inflight)

    def apply(*args: Any) -> None:
        if crash_at == "before_storing":
            raise Crash  # the intent is durable, nothing is stored
        real_apply(*args)

    monkeypatch.setattr(queue.spool, "checkpoint", checkpoint)
    monkeypatch.setattr(queue, "_apply", apply)
    with pytest.raises(TimeoutError):
        queue.flush(timeout=5)
    assert queue.drain_error is not None  # the drainer "died"
    queue.spool.close()  # the process is gone: its lock and files are released

    again = IngestQueue(rt, tmp_path / "spool")
    again.start()
    again.flush()
    events, quarantined = _counts(rt)
    # a0..a{big-1}, b0-b1 and the two sent without messageId, each once
    assert len(events) == len(set(events)) == big + 4
    assert {f"a{i}" for i in range(big)} | {"b0", "b1"} <= set(events)
    # Each invalid message once (position big + 2 of a, 4 of b), and the 400's row once.
    assert quarantined == sorted([("invalid", 1), ("invalid", 4), ("invalid", big + 2)])
    with rt.db.engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).where(schema.quarantine.c.quarantine_id == qid)
            ).scalar_one()
            == 1
        )
    assert again.status()["pending_records"] == 0
    again.close()
    # Opened once more: nothing left to replay, nothing stored twice.
    third = IngestQueue(rt, tmp_path / "spool")
    third.start()
    third.flush()
    assert _counts(rt) == (events, quarantined)
    third.close()


def test_a_database_error_is_retried_and_a_failing_request_is_quarantined(
    rt: Runtime, tmp_path: Path, source: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, src = source
    queue = IngestQueue(rt, tmp_path / "spool", drain_delay=60)
    real = queue._ingest
    calls: list[int] = []

    def ingest(workspace_id: str, source_id: str, records: list[Any], r: int) -> None:
        calls.append(len(records))
        if len(calls) == 1:
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        if any(isinstance(rec.payload, dict) and rec.payload.get("event") == "Poison"
               for rec in records):  # fmt: skip
            raise ValueError("a bug the record triggers")
        real(workspace_id, source_id, records, r)

    monkeypatch.setattr(queue, "_ingest", ingest)
    queue.start()
    poison = [{"type": "track", "userId": "u", "event": "Poison", "messageId": "p1"}]
    _submit(queue, ws, src, [_messages("a", 2), poison, _messages("c", 1)])
    queue.flush()
    events, quarantined = _counts(rt)
    assert {"a0", "a1", "c0"} <= set(events)
    assert "p1" not in events
    assert ("ingest_error", 1) in quarantined  # the failing request's record, replayable
    assert queue.drain_error is None
    queue.close()


def test_frames_are_self_describing(tmp_path: Path) -> None:
    """A frame's body is the request's workspace, source and records as JSON."""
    spool = Spool(tmp_path)
    spool.open()
    body = orjson.dumps({"w": "ws", "s": "src", "r": [{"event": "x"}]})
    _append(spool, body)
    [frame] = list(spool.frames(0, spool.end))
    assert isinstance(frame, Frame)
    assert orjson.loads(frame.body)["r"] == [{"event": "x"}]
    spool.close()
    assert issubclass(IngestUnavailable, SiyuError)

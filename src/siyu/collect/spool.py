"""A durable local spool (write-ahead log) in front of the ingestion pipeline.

The tracking API acknowledges a request once its validated records are *durable*, not once they
are stored: a pipeline call has a fixed cost of tens of milliseconds, so waiting for it made
every request wait for the batch in flight plus its own. Instead, each request's records are
appended to this log as one frame; one writer thread writes every frame waiting at that moment
with one ``write`` and one ``fdatasync`` (group commit of the file, a few milliseconds), and
answers all of those requests. A drainer (:mod:`siyu.collect.ingest_queue`) reads the frames
back in large batches into :meth:`Pipeline.ingest`; on start-up it replays whatever was not
committed.

Layout of the spool directory:

- ``LOCK``: held (``flock``) by the one process using the spool;
- ``<lsn>.seg``: segments of the log, named by the log position (LSN, a byte offset in the
  whole log) of their first frame. A segment is closed at ``segment_bytes`` and deleted once
  everything in it is committed, so the spool's size follows the backlog, not the history;
- ``checkpoint``: two alternating 64-byte slots, each ``(seq, committed LSN, in-flight batch)``
  with a CRC: the valid slot with the highest ``seq`` wins, so a torn checkpoint write leaves
  the previous one.

A frame is ``magic, body length, CRC-32, record count, received time (us)`` and the body. The
tail of the last segment is checked at start-up: a frame cut short by a crash (its fsync never
completed, so its request was never acknowledged) is truncated away.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import errno
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from siyu.errors import SiyuError

log = logging.getLogger("siyu.spool")

MAGIC = b"SYU1"
HEADER = struct.Struct("<4sIIIq")  # magic, body length, crc32, records, received (us)
_META = struct.Struct("<Iq")  # the CRC covers records and received time too
CHECKPOINT = struct.Struct("<4sQqqqq")  # magic, seq, committed, in-flight start, end, received
CKPT_MAGIC = b"SYCK"
SLOT = 64
SUFFIX = ".seg"
MAX_BODY = 64 * 1024 * 1024  # a frame is one request: far below this unless the file is corrupt


class IngestUnavailable(SiyuError):
    """The tracking API cannot make records durable now (disk full, backlog over its limit)."""

    code = "unavailable"
    status = 503
    default_hint = "Retry after the number of seconds in the Retry-After header."


@dataclass(frozen=True, slots=True)
class Frame:
    """One appended request: its position in the log, record count, receipt time and body."""

    lsn: int
    end: int
    records: int
    received_us: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What is committed, and the batch that was being committed (start == end: none)."""

    seq: int = 0
    committed: int = 0
    inflight_start: int = 0
    inflight_end: int = 0
    inflight_received_us: int = 0

    @property
    def inflight(self) -> tuple[int, int, int] | None:
        if self.inflight_end <= self.inflight_start:
            return None
        return self.inflight_start, self.inflight_end, self.inflight_received_us


def encode_frame(body: bytes, records: int, received_us: int) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(_META.pack(records, received_us)))
    return HEADER.pack(MAGIC, len(body), crc, records, received_us) + body


@dataclass
class _Waiter:
    data: bytes
    records: int
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append frames durably (group fsync), read them back, checkpoint what is committed."""

    _os_write = staticmethod(os.write)  # replaced in tests to simulate a full disk

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 64 * 1024 * 1024,
        max_pending_bytes: int = 1024 * 1024 * 1024,
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_pending_bytes = max_pending_bytes
        self._cond = threading.Condition()  # guards everything below
        self._queue: list[_Waiter] = []
        self._segments: list[int] = []  # start LSNs, ascending
        self._end = 0  # LSN after the last durable frame
        self._committed = 0
        self._pending_records = 0  # records in [committed, end)
        self._checkpoint = Checkpoint()
        self._active_fd = -1
        self._read_fds: dict[int, int] = {}
        self._lock_fd = -1
        self._ckpt_fd = -1
        self._writer: threading.Thread | None = None
        self._stopping = False
        self._failure: str | None = None  # last write error, shown in status

    # -- opening and recovery -----------------------------------------------------------------

    def open(self) -> Checkpoint:
        """Lock the directory, read the checkpoint, cut a torn tail; return the checkpoint."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # events hold personal data
        self._lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise IngestUnavailable(
                f"The tracking spool {self.directory} is in use by another process.",
                hint="Give each 'siyu serve' its own tracking_spool_dir.",
                details={"retry_after": 5},
            ) from None
        self._checkpoint = self._read_checkpoint()
        self._segments = sorted(
            int(p.name.removesuffix(SUFFIX))
            for p in self.directory.glob("*" + SUFFIX)
            if p.name.removesuffix(SUFFIX).isdigit()
        )
        committed = self._checkpoint.committed
        if self._segments and committed < self._segments[0]:
            committed = self._segments[0]  # never below the oldest segment still kept
        if not self._segments:
            self._new_segment(committed)
        last = self._segments[-1]
        self._end = last + self._valid_length(last, truncate=True)
        self._committed = committed
        self._pending_records = sum(f.records for f in self.frames(committed, self._end))
        self._active_fd = os.open(self._path(last), os.O_WRONLY | os.O_APPEND)
        self._writer = threading.Thread(target=self._write_loop, name="siyu-spool", daemon=True)
        self._writer.start()
        return self._checkpoint

    def _path(self, start: int) -> Path:
        return self.directory / f"{start:020d}{SUFFIX}"

    def _new_segment(self, start: int) -> None:
        fd = os.open(self._path(start), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        _fsync_dir(self.directory)  # the new file's name must survive a crash too
        with self._cond:
            self._segments.append(start)

    def _valid_length(self, start: int, *, truncate: bool) -> int:
        """Bytes of whole, intact frames at the start of a segment (cut the rest if asked)."""
        path = self._path(start)
        size = path.stat().st_size
        fd = os.open(path, os.O_RDWR)
        try:
            offset = 0
            while offset < size:
                frame = self._frame_at(fd, start, offset, size)
                if frame is None:
                    break
                offset = frame.end - start
            if offset < size and truncate:
                log.warning(
                    "spool %s: cutting %d bytes of a frame that was never made durable",
                    path.name,
                    size - offset,
                )
                os.ftruncate(fd, offset)
                os.fsync(fd)
            return offset
        finally:
            os.close(fd)

    @staticmethod
    def _frame_at(fd: int, start: int, offset: int, size: int) -> Frame | None:
        if size - offset < HEADER.size:
            return None
        magic, length, crc, records, received = HEADER.unpack(os.pread(fd, HEADER.size, offset))
        if magic != MAGIC or length > MAX_BODY or offset + HEADER.size + length > size:
            return None
        body = os.pread(fd, length, offset + HEADER.size)
        if len(body) != length or zlib.crc32(body, zlib.crc32(_META.pack(records, received))) != (
            crc
        ):
            return None
        lsn = start + offset
        return Frame(lsn, lsn + HEADER.size + length, records, received, body)

    # -- appending (event loop side and writer thread) ---------------------------------------

    def check_room(self) -> None:
        """Refuse (503) while the backlog is over its limit or the last write failed."""
        with self._cond:
            if self._stopping:
                raise IngestUnavailable("The server is shutting down.", details={"retry_after": 5})
            backlog = self._end - self._committed
            if backlog > self.max_pending_bytes:
                raise IngestUnavailable(
                    f"The tracking spool holds {backlog // 2**20} MB not yet stored (limit "
                    f"{self.max_pending_bytes // 2**20} MB): the database does not keep up.",
                    hint="Retry after the number of seconds in Retry-After; check the database.",
                    details={"retry_after": 5},
                )

    async def append(self, frame: bytes, records: int) -> None:
        """Return once ``frame`` is durable (fdatasync); IngestUnavailable if it cannot be."""
        self.check_room()
        loop = asyncio.get_running_loop()
        waiter = _Waiter(frame, records, loop.create_future(), loop)
        with self._cond:
            self._queue.append(waiter)
            if len(self._queue) == 1:
                self._cond.notify_all()
        await waiter.future

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                group, self._queue = self._queue, []
            try:
                error = self._write(group)
            except Exception as exc:  # never leave a request waiting for an answer
                log.exception("tracking spool write failed")
                error = IngestUnavailable(
                    f"Events cannot be made durable: {exc}", details={"retry_after": 5}
                )
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for w in group:
                by_loop.setdefault(w.loop, []).append(w.future)
            for loop, futures in by_loop.items():
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    loop.call_soon_threadsafe(_settle, futures, error)

    def _write(self, group: list[_Waiter]) -> IngestUnavailable | None:
        data = b"".join(w.data for w in group)
        start = self._end
        try:
            if self._active_fd < 0:  # a rotation failed half-way: append to the last segment
                path = self._path(self._segments[-1])
                self._active_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            if self._end - self._segments[-1] > 0 and (
                self._end - self._segments[-1] + len(data) > self.segment_bytes
            ):
                self._rotate()
            written = self._os_write(self._active_fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write")
            os.fdatasync(self._active_fd)
        except OSError as exc:
            return self._write_failed(start, exc)
        with self._cond:
            self._end = start + len(data)
            self._pending_records += sum(w.records for w in group)
            self._failure = None
            self._cond.notify_all()
        return None

    def _write_failed(self, start: int, exc: OSError) -> IngestUnavailable:
        """Cut the file back to the last durable frame; answer 503 to the waiting requests."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._active_fd, start - self._segments[-1])
            os.fsync(self._active_fd)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        reason = "the disk is full" if full else f"the write failed ({exc.strerror or exc})"
        log.error("tracking spool %s: %s", self.directory, reason)
        with self._cond:
            self._failure = reason
        return IngestUnavailable(
            f"Events cannot be made durable: {reason} ({self.directory}).",
            hint="Retry after the number of seconds in Retry-After; free disk space on the "
            "spool's volume (tracking_spool_dir).",
            details={"retry_after": 30 if full else 5},
        )

    def _rotate(self) -> None:
        os.close(self._active_fd)
        self._active_fd = -1
        self._new_segment(self._end)
        self._active_fd = os.open(self._path(self._end), os.O_WRONLY | os.O_APPEND)

    # -- reading (drainer) ----------------------------------------------------------------------

    def wait(self, position: int, timeout: float | None) -> int:
        """The durable end once it is past ``position`` (or when ``timeout`` elapses)."""
        with self._cond:
            if self._end <= position and not self._stopping:
                self._cond.wait(timeout)
            return self._end

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def frames(self, start: int, end: int) -> Iterator[Frame]:
        """Intact frames in ``[start, end)``, segment by segment (a corrupt rest is skipped)."""
        position = start
        while position < end:
            with self._cond:
                index = bisect.bisect_right(self._segments, position) - 1
                if index < 0:
                    return
                seg = self._segments[index]
                seg_end = self._segments[index + 1] if index + 1 < len(self._segments) else end
            fd = self._read_fds.get(seg)
            if fd is None:
                fd = self._read_fds[seg] = os.open(self._path(seg), os.O_RDONLY)
            limit = min(seg_end, end) - seg
            while position < seg + limit:
                frame = self._frame_at(fd, seg, position - seg, limit)
                if frame is None:
                    log.error(
                        "spool segment %s is corrupt at offset %d: %d bytes skipped",
                        self._path(seg).name,
                        position - seg,
                        seg + limit - position,
                    )
                    position = seg + limit
                    break
                yield frame
                position = frame.end

    # -- checkpoints and release ------------------------------------------------------------

    def _read_checkpoint(self) -> Checkpoint:
        path = self.directory / "checkpoint"
        self._ckpt_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        best = Checkpoint()
        for slot in range(2):
            raw = os.pread(self._ckpt_fd, SLOT, slot * SLOT)
            if len(raw) < CHECKPOINT.size + 4:
                continue
            fields, crc = (
                raw[: CHECKPOINT.size],
                int.from_bytes(raw[CHECKPOINT.size :][:4], "little"),
            )
            if zlib.crc32(fields) != crc:
                continue
            magic, *values = CHECKPOINT.unpack(fields)
            if magic == CKPT_MAGIC and values[0] >= best.seq:
                best = Checkpoint(*values)
        return best

    def checkpoint(self, committed: int, inflight: tuple[int, int, int] | None = None) -> None:
        """Durably record ``committed`` and the batch about to be committed (if any)."""
        start, end, received = inflight or (0, 0, 0)
        ckpt = Checkpoint(self._checkpoint.seq + 1, committed, start, end, received)
        fields = CHECKPOINT.pack(CKPT_MAGIC, ckpt.seq, committed, start, end, received)
        record = fields + zlib.crc32(fields).to_bytes(4, "little")
        os.pwrite(self._ckpt_fd, record.ljust(SLOT, b"\0"), (ckpt.seq % 2) * SLOT)
        os.fdatasync(self._ckpt_fd)
        self._checkpoint = ckpt

    def committed_to(self, position: int, records: int) -> None:
        """``position`` is committed (and checkpointed): delete the segments wholly before it."""
        with self._cond:
            self._committed = position
            self._pending_records -= records
            done = [
                s for i, s in enumerate(self._segments[:-1]) if self._segments[i + 1] <= position
            ]
            self._segments = [s for s in self._segments if s not in done]
            self._cond.notify_all()
        for seg in done:
            fd = self._read_fds.pop(seg, None)
            if fd is not None:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                self._path(seg).unlink()

    # -- state and closing --------------------------------------------------------------------

    @property
    def end(self) -> int:
        with self._cond:
            return self._end

    @property
    def committed(self) -> int:
        with self._cond:
            return self._committed

    def idle(self) -> bool:
        """Nothing queued for writing and everything written is committed."""
        with self._cond:
            return not self._queue and self._committed >= self._end

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and self._committed >= self._end, timeout
            )

    def status(self) -> dict[str, object]:
        with self._cond:
            return {
                "pending_records": self._pending_records + sum(w.records for w in self._queue),
                "pending_bytes": self._end - self._committed,
                "segments": len(self._segments),
                "committed_lsn": self._committed,
                "end_lsn": self._end,
                "write_error": self._failure,
            }

    def stop_writing(self) -> None:
        """Write what is queued, then refuse new appends."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._writer is not None:
            self._writer.join(timeout=60)

    def close(self) -> None:
        self.stop_writing()
        for fd in [self._active_fd, self._ckpt_fd, *self._read_fds.values()]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fds.clear()
        self._active_fd = self._ckpt_fd = -1
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = -1


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

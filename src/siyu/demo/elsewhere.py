"""The demo generator in a process of its own, its chunks sent to the loading process.

The records stage of a large demo is bound by the GIL: the generator thread, the pipeline's
preparing thread and its writing thread share one interpreter, and their Python time added up
to the stage's wall time (docs/events.md, ninth session). A generated record costs about 12 us
of Python; receiving it pickled costs about 3 us. In a child process the generator runs on
the other core while the pipeline keeps the GIL of this one.

The child is started with ``spawn`` (the parent has DuckDB and pipeline threads, which a fork
would copy mid-state). Chunks travel through a one-way pipe whose only write end is the
child's: the parent closes its copy once the child has started, so when the child dies, even
in the middle of a chunk, the parent's read ends with end-of-file instead of waiting for bytes
no one will write. (A ``multiprocessing.Queue`` keeps both ends open in the parent: a child
killed while sending left the parent blocked for good, which a test caught.) A chunk is far
larger than the pipe's buffer, so the child waits in ``send`` until the parent reads it: memory
holds about three chunks (the one being stored, the one being sent, the one being made), as
with the generator thread.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import traceback
from collections.abc import Iterator
from contextlib import suppress
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

from siyu.demo.generator import DemoChunk, generate_with_truth
from siyu.errors import SiyuError

Item = tuple[list[DemoChunk], pa.Table]
_DONE = "done"
_FAILED = "failed"


def send_generated(out: Connection, customers: int, seed: int, as_of: dt.date) -> None:
    """The child's work: every chunk of :func:`generate_with_truth` into ``out``, then an
    end mark, or the failure's text (an exception object may not survive pickling)."""
    gc.disable()  # the chunks are plain dicts and lists: reference counting frees them
    try:
        for item in generate_with_truth(customers, seed, as_of):
            out.send(item)
        out.send(_DONE)
    except BaseException:  # every failure goes to the parent, which raises it
        with suppress(OSError):  # unless the parent is gone
            out.send((_FAILED, traceback.format_exc()))
    finally:
        out.close()


def generated_elsewhere(customers: int, seed: int, as_of: dt.date) -> Iterator[Item]:
    """:func:`generate_with_truth`'s chunks, made in a child process, in the same order."""
    context = multiprocessing.get_context("spawn")
    inbox, outbox = context.Pipe(duplex=False)
    child = context.Process(
        target=send_generated,
        args=(outbox, customers, seed, as_of),
        name="siyu-demo-generator",
        daemon=True,
    )
    child.start()
    outbox.close()  # the child holds the only write end: its exit ends our reads
    try:
        while True:
            item = _receive(inbox)
            if item == _DONE:
                break
            if isinstance(item, tuple) and len(item) == 2 and item[0] == _FAILED:
                raise SiyuError(
                    f"The demo generator failed:\n{item[1]}",
                    hint="This is a bug in siyu's demo generator; please report it.",
                )
            yield item
        child.join()
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        inbox.close()


def _receive(inbox: Connection) -> Any:
    """The next item; a child that exited without sending its end mark is an error."""
    try:
        return inbox.recv()
    except (EOFError, OSError):  # every write end closed, possibly in the middle of a chunk
        raise SiyuError(
            "The demo generator process stopped before sending every chunk.",
            hint="Run the demo again; if it stops again, run it with fewer customers.",
        ) from None

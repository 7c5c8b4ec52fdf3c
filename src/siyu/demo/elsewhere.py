"""The demo generator in a process of its own, its chunks sent to the loading process.

The records stage of a large demo is bound by the GIL: the generator thread, the pipeline's
preparing thread and its writing thread share one interpreter, and their Python time added up
to the stage's wall time (docs/events.md, ninth session). A generated record costs about 12 us
of Python; receiving it pickled costs about 3 us. In a child process the generator runs on
the other core while the pipeline keeps the GIL of this one.

The child is started with ``spawn`` (the parent has DuckDB and pipeline threads, which a fork
would copy mid-state). At most one chunk waits in the queue, so memory holds about three chunks
(the one being stored, the one waiting, the one being made), as with the generator thread.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import queue as queues
import traceback
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from siyu.demo.generator import DemoChunk, generate_with_truth
from siyu.errors import SiyuError

Item = tuple[list[DemoChunk], pa.Table]
_DONE = "done"
_FAILED = "failed"
_POLL_SECONDS = 1.0


def send_generated(out: Any, customers: int, seed: int, as_of: dt.date) -> None:
    """The child's work: every chunk of :func:`generate_with_truth` into ``out``, then an
    end mark, or the failure's text (an exception object may not survive pickling)."""
    gc.disable()  # the chunks are plain dicts and lists: reference counting frees them
    try:
        for item in generate_with_truth(customers, seed, as_of):
            out.put(item)
        out.put(_DONE)
    except BaseException:  # every failure goes to the parent, which raises it
        out.put((_FAILED, traceback.format_exc()))


def generated_elsewhere(customers: int, seed: int, as_of: dt.date) -> Iterator[Item]:
    """:func:`generate_with_truth`'s chunks, made in a child process, in the same order."""
    context = multiprocessing.get_context("spawn")
    inbox = context.Queue(maxsize=1)
    child = context.Process(
        target=send_generated,
        args=(inbox, customers, seed, as_of),
        name="siyu-demo-generator",
        daemon=True,
    )
    child.start()
    try:
        while True:
            item = _receive(inbox, child)
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
        inbox.join_thread()


def _receive(inbox: Any, child: Any) -> Any:
    """The next item; a child that died without sending its end mark is an error."""
    stopped = SiyuError(
        "The demo generator process stopped before sending every chunk.",
        hint="Run the demo again; if it stops again, run it with fewer customers.",
    )
    while True:
        try:
            return inbox.get(timeout=_POLL_SECONDS)
        except queues.Empty:
            if child.is_alive():
                continue
        except (EOFError, OSError):  # killed while writing a chunk
            raise stopped from None
        try:  # it may have sent its last item just before exiting
            return inbox.get(timeout=_POLL_SECONDS)
        except (queues.Empty, EOFError, OSError):
            raise stopped from None

"""Shared pieces of the CLI: the console, options, and the runtime."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from siyu.config import load_settings

if TYPE_CHECKING:
    from siyu.runtime import Runtime

console = Console()
err_console = Console(stderr=True)

WorkspaceOpt = Annotated[
    str | None,
    typer.Option("--workspace", "-w", help="Workspace slug (default: SIYU_WORKSPACE)."),
]


@contextmanager
def runtime() -> Iterator[Runtime]:
    """Open the configured database for the duration of one command.

    The CLI's modules import the database, pipeline and model code inside their commands, so
    that ``siyu --help`` and commands that need little start in a fraction of a second (they
    took about 4 s importing pandas, SciPy and scikit-learn).
    """
    from siyu.runtime import Runtime

    with Runtime(load_settings()) as rt:
        yield rt


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )

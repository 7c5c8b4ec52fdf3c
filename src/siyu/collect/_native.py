"""Which ingestion modules run compiled, and a guard that never lets a stale build run.

``setup.py`` compiles the modules in :data:`COMPILED` with mypyc; each C extension sits beside
its .py source and Python imports it first. After an edit of the source (without
``make install``), the extension would run the old code: the finder below notices that the
source is newer than the extension and imports the source instead, with a warning. It is
installed by ``siyu/collect/__init__.py`` before any of these modules is imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

# Keep in step with setup.py's COMPILED.
COMPILED = ("siyu.collect.fastpath", "siyu.collect.validate", "siyu.collect.rows")

# An install writes a module's files within moments of each other, in no set order.
_SLACK_SECONDS = 2.0


class _FreshSourceFinder(importlib.abc.MetaPathFinder):
    """Import a compiled module's .py source instead when the source is newer."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if (
            spec is None
            or spec.origin is None
            or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
        ):
            return spec
        directory = os.path.dirname(spec.origin)
        # The compiled modules are one mypyc group: a compiled module imports its compiled
        # siblings inside the group, past this finder, so one stale member makes all stale.
        stale = [name for name in COMPILED if _stale(directory, name)]
        if not stale:
            return spec
        source = os.path.join(directory, fullname.rpartition(".")[2] + ".py")
        warnings.warn(
            f"{fullname}: the compiled {', '.join(stale)} is older than its source; running "
            f"{source} (slower). Rebuild with `make install` (or pip install -e .).",
            RuntimeWarning,
            stacklevel=2,
        )
        return importlib.util.spec_from_file_location(fullname, source)


def _stale(directory: str, fullname: str) -> bool:
    """Whether the module's .py source in ``directory`` is newer than its compiled extension."""
    stem = os.path.join(directory, fullname.rpartition(".")[2])
    try:
        source = os.stat(stem + ".py").st_mtime
    except OSError:  # no source beside it: the extension is all there is
        return False
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        try:
            return source > os.stat(stem + suffix).st_mtime + _SLACK_SECONDS
        except OSError:
            continue
    return False  # not compiled: the source is imported anyway


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _FreshSourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _FreshSourceFinder())


def compiled() -> dict[str, bool]:
    """Each module of :data:`COMPILED` -> whether the imported module is the C extension."""
    result: dict[str, bool] = {}
    for name in COMPILED:
        module = importlib.import_module(name)
        result[name] = (module.__file__ or "").endswith(
            tuple(importlib.machinery.EXTENSION_SUFFIXES)
        )
    return result


install()

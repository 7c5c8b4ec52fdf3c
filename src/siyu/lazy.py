"""Package names imported on first use (PEP 562), so a light submodule loads alone.

Importing any submodule runs its package's ``__init__``: a package that imported its whole
public API there made every table definition (``siyu.store.catalog``) pull in Ibis, SciPy and
the models. Such a package maps each public name to the module that defines it and installs
``__getattr__ = exports(__name__, homes)``; type checkers read the names from an
``if TYPE_CHECKING:`` import block beside it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``homes[name]`` and returns its ``name``."""

    def lookup(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home), name)

    return lookup

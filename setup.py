"""Build step: compile the ingestion hot path with mypyc (see docs/events.md).

Everything else about the package is in pyproject.toml. The modules in COMPILED are plain,
mypy-strict Python and stay the one source: mypyc turns each into a C extension that sits beside
its .py file (``pip install -e .`` builds them in place) and is imported instead of it. A
compiled module older than its source is skipped in favour of the source
(``siyu/collect/_native.py``), so an edit never runs stale code; ``make install`` rebuilds.

``SIYU_PURE_PYTHON=1`` builds without compiling (no C compiler needed); the package then runs
the same code as Python, slower.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

# Keep in step with siyu.collect._native.COMPILED.
COMPILED = [
    "src/siyu/collect/fastpath.py",
    "src/siyu/collect/validate.py",
    "src/siyu/collect/rows.py",
]


def _ext_modules() -> list[object]:
    if os.environ.get("SIYU_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # a build without isolation and without mypy installed
        print("siyu: mypy is not installed; the ingestion modules stay Python", file=sys.stderr)
        return []
    # The build environment has mypy but none of siyu's dependencies: their types are unknown
    # (Any) there, which mypyc compiles as plain Python objects. --config-file= skips
    # pyproject's [tool.mypy] (its pydantic plugin is not installed in the build environment);
    # `make typecheck` is the strict check.
    options = ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent"]
    return list(mypycify([*options, *COMPILED], opt_level="3"))


setup(ext_modules=_ext_modules())

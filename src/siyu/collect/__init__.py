"""Collect: the Segment-spec event model and the ingestion pipeline every entry point uses.

The package's names are imported on first use (PEP 562): a light submodule (the source kinds
for a CLI option's help) does not pull in the pipeline, pandas and Arrow compute with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from siyu.collect import _native  # noqa: F401  (first: never import a stale compiled module)

if TYPE_CHECKING:
    from siyu.collect.pipeline import IngestReport, Part, Pipeline
    from siyu.collect.validate import Record

__all__ = ["IngestReport", "Part", "Pipeline", "Record"]

_HOMES = {
    "IngestReport": "siyu.collect.pipeline",
    "Part": "siyu.collect.pipeline",
    "Pipeline": "siyu.collect.pipeline",
    "Record": "siyu.collect.validate",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'siyu.collect' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)

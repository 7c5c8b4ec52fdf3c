"""Collect: the Segment-spec event model and the ingestion pipeline every entry point uses.

The package's names are imported on first use (:mod:`siyu.lazy`): a light submodule (the
source kinds for a CLI option's help) does not pull in the pipeline, pandas and Arrow compute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from siyu.collect import _native  # noqa: F401  (first: never import a stale compiled module)
from siyu.lazy import exports

if TYPE_CHECKING:
    from siyu.collect.pipeline import IngestReport, Part, Pipeline
    from siyu.collect.validate import Record

__all__ = ["IngestReport", "Part", "Pipeline", "Record"]

__getattr__ = exports(
    __name__,
    {
        "IngestReport": "siyu.collect.pipeline",
        "Part": "siyu.collect.pipeline",
        "Pipeline": "siyu.collect.pipeline",
        "Record": "siyu.collect.validate",
    },
)

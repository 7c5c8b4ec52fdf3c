"""Collect: the Segment-spec event model and the ingestion pipeline every entry point uses."""

from siyu.collect import _native  # noqa: F401  (first: never import a stale compiled module)
from siyu.collect.pipeline import IngestReport, Part, Pipeline
from siyu.collect.validate import Record

__all__ = ["IngestReport", "Part", "Pipeline", "Record"]

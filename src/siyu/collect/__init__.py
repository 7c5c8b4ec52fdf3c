"""Collect: the Segment-spec event model and the ingestion pipeline every entry point uses."""

from siyu.collect.pipeline import IngestReport, Pipeline
from siyu.collect.validate import Record

__all__ = ["IngestReport", "Pipeline", "Record"]

"""Segments: RFM, lifecycle tiers, the tag language and segments."""

from siyu.segments.rfm import SEGMENTS, RfmConfig, rfm
from siyu.segments.run import RunReport, run_segments, segments_expr
from siyu.segments.tiers import TIER_MODELS, TierConfig, tier_names, tiers

__all__ = [
    "SEGMENTS",
    "TIER_MODELS",
    "RfmConfig",
    "RunReport",
    "TierConfig",
    "rfm",
    "run_segments",
    "segments_expr",
    "tier_names",
    "tiers",
]

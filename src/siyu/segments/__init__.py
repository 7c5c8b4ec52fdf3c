"""Segments: RFM, lifecycle tiers, the tag language and segments.

The names below are imported on first use (:mod:`siyu.lazy`): the slice's table definitions
load without Ibis. The ``rfm`` and ``tiers`` functions are not package names (their modules
have those names): import them from ``siyu.segments.rfm`` and ``siyu.segments.tiers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from siyu.lazy import exports

if TYPE_CHECKING:
    from siyu.segments.rfm import SEGMENTS, RfmConfig
    from siyu.segments.run import RunReport, run_segments, segments_expr
    from siyu.segments.tiers import TIER_MODELS, TierConfig, tier_names

__all__ = [
    "SEGMENTS",
    "TIER_MODELS",
    "RfmConfig",
    "RunReport",
    "TierConfig",
    "run_segments",
    "segments_expr",
    "tier_names",
]

__getattr__ = exports(
    __name__,
    {
        "SEGMENTS": "siyu.segments.rfm",
        "RfmConfig": "siyu.segments.rfm",
        "RunReport": "siyu.segments.run",
        "run_segments": "siyu.segments.run",
        "segments_expr": "siyu.segments.run",
        "TIER_MODELS": "siyu.segments.tiers",
        "TierConfig": "siyu.segments.tiers",
        "tier_names": "siyu.segments.tiers",
    },
)

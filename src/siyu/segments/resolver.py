"""What ``tag:``, ``tier:``, ``rfm:`` and ``reachable:`` mean inside a segment expression.

A segment is a tag-language expression that may also name the results of other computations.
This resolver answers those references with Ibis tables of the customers they hold:

- ``tag:ID``: members of the tag as of the last tagging run (``customer_tags``); reading the
  stored membership keeps a live count to one indexed scan instead of re-running a rule;
- ``tier:NAME``: the tier of the default model in the last segments run (``customer_segments``);
  another model's tier is written ``tier:MODEL-NAME`` (``tier:apparel-gold``);
- ``rfm:NAME``: the RFM segment, by its slug (``rfm:champions``, ``rfm:cant_lose``);
- ``reachable:CHANNEL``: the customer's latest marketing consent for the channel (or for
  ``all``) is ``granted`` as of the evaluation time: consent is read live, never from a run.

``segment:ID`` (one saved segment inside another) is inlined by
:func:`siyu.segments.lang.inline_references` before compiling, so it is not resolved here.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import cached_property
from typing import Any

import ibis

from siyu.compute import WorkspaceTables
from siyu.segments.attributes import category_key
from siyu.segments.catalogue import TagDef
from siyu.segments.rfm import SEGMENTS
from siyu.segments.tiers import TIER_MODELS, tier_names

REACHABLE_CHANNELS: tuple[str, ...] = (
    "email",
    "sms",
    "whatsapp",
    "push",
    "phone",
    "line",
    "wechat",
)
REFERENCE_KINDS: tuple[str, ...] = ("tag", "tier", "rfm", "reachable", "segment")


def rfm_slug(segment: str) -> str:
    """``Can't Lose`` -> ``cant_lose``: the name used after ``rfm:``."""
    return category_key(segment.replace("'", ""))


RFM_BY_SLUG: dict[str, str] = {rfm_slug(s): s for s in SEGMENTS}


def split_tier(name: str) -> tuple[str, str]:
    """``loyal`` -> (default, loyal); ``apparel-gold`` -> (apparel, gold)."""
    model, sep, tier = name.partition("-")
    return (model, tier) if sep else ("default", name)


class SegmentResolver:
    """Resolves segment references for one workspace at one point in time."""

    def __init__(
        self,
        t: WorkspaceTables,
        as_of: datetime,
        tags: Collection[TagDef],
        segments: Collection[str] = (),
    ) -> None:
        self.t = t
        self.as_of = as_of
        self.tag_ids = {tag.tag_id for tag in tags}
        self.segment_ids = set(segments)

    @property
    def kinds(self) -> Collection[str]:
        return REFERENCE_KINDS

    def exists(self, kind: str, name: str) -> bool:
        if kind == "tag":
            return name in self.tag_ids
        if kind == "tier":
            model, tier = split_tier(name)
            return model in TIER_MODELS and tier in tier_names(model)
        if kind == "rfm":
            return name in RFM_BY_SLUG
        if kind == "reachable":
            return name in REACHABLE_CHANNELS
        if kind == "segment":
            return name in self.segment_ids
        return False

    def members(self, kind: str, name: str) -> Any:
        if kind == "tag":
            tags = self.t.customer_tags
            return tags.filter(tags.tag_id == name).select("customer_id")
        if kind == "tier":
            model, tier = split_tier(name)
            s = self.t.customer_segments
            return s.filter((s.model == model) & (s.tier == tier)).select("customer_id")
        if kind == "rfm":
            s = self.t.customer_segments
            wanted = RFM_BY_SLUG[name]
            return s.filter((s.model == "default") & (s.rfm_segment == wanted)).select(
                "customer_id"
            )
        if kind == "reachable":
            return self._consent.filter(lambda c: c.channel.isin([name, "all"])).pipe(_latest)
        raise AssertionError(f"{kind}:{name} should have been inlined before compiling")

    @cached_property
    def _consent(self) -> Any:
        c = self.t.consents
        return c.filter((c.purpose == "marketing") & (c.timestamp <= ibis.literal(self.as_of)))


def _latest(consents: Any) -> Any:
    """Customers whose most recent matching consent row is a grant."""
    ranked = consents.mutate(
        _rank=ibis.row_number().over(
            group_by="customer_id",
            order_by=[ibis.desc(consents.timestamp), ibis.desc("consent_id")],
        )
    )
    latest = ranked.filter(ranked._rank == 0)
    return latest.select("customer_id", matched=latest.status == "granted")


__all__ = ["REACHABLE_CHANNELS", "REFERENCE_KINDS", "SegmentResolver", "rfm_slug", "split_tier"]

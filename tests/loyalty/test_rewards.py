"""The built-in rewards (points, coupon) through the registry, idempotent, with their events."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from siyu.errors import InvalidInput
from siyu.loyalty.ledger import balances
from siyu.registry import registry
from siyu.rewards import RewardGrant
from siyu.runtime import Runtime
from tests.loyalty.helpers import customer, events

NOW = datetime(2026, 3, 1, 9, 0)


def test_points_reward_is_granted_once_per_key_and_logged(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    cid = customer(rt, "ann", at=NOW)
    reward = registry.rewards.get("points")
    grant = RewardGrant(ws, cid, {"points": 150}, "journey:j1:step2:ann", "journey", "j1/step2")
    first = reward.grant(rt.db, grant, now=NOW)
    second = reward.grant(rt.db, grant, now=NOW)
    assert first.created
    assert not second.created
    assert first.reward_id == second.reward_id
    invite = reward.grant(
        rt.db, RewardGrant(ws, cid, {"bonus": "invite"}, "ref:1", "referral"), now=NOW
    )
    assert invite.description == "200 points (invite)"  # 100 doubled by default
    with rt.db.engine.connect() as conn:
        assert balances(conn, ws, [cid]) == {cid: 350}
    earned = events(rt, "Points Earned")
    assert sorted(e["properties"]["points"] for e in earned) == [150, 200]
    assert {e["customer_id"] for e in earned} == {cid}
    assert earned[0]["user_id"] == "ann"
    assert reward.validate({"points": -1}) == ["points must be a positive whole number, got -1"]
    with pytest.raises(InvalidInput, match="either"):
        reward.grant(rt.db, RewardGrant(ws, cid, {}, "bad", "journey"), now=NOW)


def test_coupon_reward_issues_one_unguessable_code_per_key(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    cid = customer(rt, "bob", at=NOW)
    reward = registry.rewards.get("coupon")
    grant = RewardGrant(ws, cid, {"amount": 20, "currency": "eur"}, "referral:9", "referral")
    first = reward.grant(rt.db, grant, now=NOW)
    again = reward.grant(rt.db, grant, now=NOW)
    assert first.created
    assert not again.created
    assert first.code == again.code
    assert first.code is not None
    assert re.fullmatch(r"[2-9A-HJKMNP-TV-Z]{4}(-[2-9A-HJKMNP-TV-Z]{4}){2}", first.code)
    assert first.description == f"Coupon {first.code} (EUR 20 off)"
    other = reward.grant(rt.db, RewardGrant(ws, cid, {"percent": 10}, "x", "journey"), now=NOW)
    assert other.code != first.code
    issued = events(rt, "Coupon Issued")
    assert sorted(e["properties"]["code"] for e in issued) == sorted([first.code, other.code])
    assert reward.validate({"percent": 10, "amount": 5, "currency": "EUR"})
    assert reward.validate({"amount": 5}) != []

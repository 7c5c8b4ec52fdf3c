"""The fission CLI: referrals, group buys, assists and process, with events.

The CLI is a thin layer over functions tested on both engines; it runs on DuckDB here only, to
keep the suite fast (each command opens the database like a real invocation).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.errors import Conflict
from siyu.fission.groupbuys import GroupBuyRefused
from siyu.runtime import Runtime
from tests.fission.helpers import T0, customer, events, ingest, order


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path}/siyu.duckdb"


def _ok(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_referral_commands(rt: Runtime, tmp_path: Path) -> None:
    koc, friend = customer(rt, "koc"), customer(rt, "friend")
    code = json.loads(_ok("referrals", "code", koc, "--json"))["code"]
    assert code in _ok("referrals", "code", koc)
    out = _ok("referrals", "refer", code, friend, "--ip", "198.51.100.2", "--now", T0.isoformat())
    assert "pending" in out
    assert "referred before" in _ok("referrals", "refer", code, friend)
    ingest(rt, order("friend", "o-f", 40, at=T0 + timedelta(days=1)))
    assert "qualified 1" in _ok("referrals", "process", "--now", "2026-03-05T00:00:00")
    (row,) = json.loads(_ok("referrals", "list", "--state", "qualified", "--json"))
    assert row["friend_id"] == friend
    assert "qualified" in _ok("referrals", "list", "--referrer", koc)
    shown = json.loads(_ok("referrals", "show", row["referral_id"]))
    assert [h["state"] for h in shown["history"]] == ["created", "qualified"]
    window = ("--since", "2026-03-01T00:00:00", "--until", "2026-03-10T00:00:00")
    metrics = json.loads(_ok("fission", "metrics", *window, "--json"))
    assert (metrics["referrals_created"], metrics["referred_customers"]) == (1, 1)
    assert metrics["top_inviters"][0]["customer_id"] == koc
    text = _ok("fission", "metrics", *window, "--top", "5")
    assert "referred customers 1" in text
    assert koc in text
    out = _ok("referrals", "review", row["referral_id"], "--reject", "--reason", "fraud_ring")
    assert "rejected (fraud_ring)" in out
    assert [e["reason"] for e in events(rt, "Referral Rejected")] == ["fraud_ring"]
    # A refusal is the project's error (main() prints its message and hint, exit code 2).
    result = CliRunner().invoke(app, ["referrals", "review", row["referral_id"], "--approve"])
    assert isinstance(result.exception, Conflict)
    assert "already rejected" in result.exception.message

    program = tmp_path / "program.yaml"
    program.write_text("burst_limit: 5\nreturn_window_days: 14\n", encoding="utf-8")
    assert "return_window_days: 14" in _ok("referrals", "program", "--set", str(program))
    assert "burst_limit: 5" in _ok("referrals", "program")


def test_group_buy_commands(rt: Runtime) -> None:
    lead, a, b, c = (customer(rt, u) for u in ("lead", "a", "b", "c"))
    out = _ok(
        "groupbuys", "create", "Trio", "--product", "p1", "--currency", "USD",
        "--list-price", "100", "--size", "3", "--tier", "2:80", "--tier", "3:70",
        "--hours", "2", "--id", "trio", "--starts", T0.isoformat(),
    )  # fmt: skip
    assert "2 -> 80, 3 -> 70" in out
    assert "trio" in _ok("groupbuys", "campaigns")
    assert json.loads(_ok("groupbuys", "campaigns", "--json"))[0]["group_size"] == 3
    group = json.loads(
        _ok("groupbuys", "open", "trio", lead, "--order", "o1", "--now", T0.isoformat(), "--json")
    )
    gid = group["group_id"]
    out = _ok("groupbuys", "join", gid, a, "--order", "o2", "--now", T0.isoformat())
    assert "2/3 members" in out
    assert "open" in _ok("groupbuys", "list", "--campaign", "trio", "--status", "open")
    # A second group with two members runs out of time: confirmed at the 2-member tier.
    g2 = json.loads(_ok("groupbuys", "open", "trio", b, "--now", T0.isoformat(), "--json"))
    _ok("groupbuys", "join", g2["group_id"], c, "--now", T0.isoformat())
    assert "completed 2, expired 0" in _ok("groupbuys", "close", "--now", "2026-03-02T12:00:00")
    shown = _ok("groupbuys", "show", gid)
    assert "paid 80.00 USD, confirmed 80.00" in shown
    assert "refund" not in shown
    result = CliRunner().invoke(app, ["groupbuys", "join", gid, b])
    assert isinstance(result.exception, GroupBuyRefused)
    assert "completed" in result.exception.message
    assert len(events(rt, "Group Buy Completed")) == 4


def test_assist_and_process_commands(rt: Runtime, tmp_path: Path) -> None:
    target, h1 = customer(rt, "target"), customer(rt, "h1")
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text("- helpers: 1\n  reward: {kind: points, points: 25}\n", encoding="utf-8")
    _ok(
        "assists", "create", "Unlock", "--thresholds", str(thresholds), "--daily-cap", "2",
        "--new-users-only", "--id", "unlock", "--starts", "2026-03-01T00:00:00",
    )  # fmt: skip
    assert "unlock" in _ok("assists", "campaigns")
    assert json.loads(_ok("assists", "campaigns", "--json"))[0]["new_users_only"] is True
    out = _ok("assists", "assist", "unlock", target, h1, "--now", T0.isoformat())
    assert "1 assists" in out
    assert "unlocked at 1" in out
    assert "locked" not in _ok("assists", "status", "unlock", target)
    assert "rewards repaired: 0" in _ok("assists", "sync")
    assert json.loads(_ok("assists", "status", "unlock", target, "--json"))["assists"] == 1
    report = json.loads(_ok("fission", "process", "--json"))
    assert report["group_buys"] == {"completed": 0, "expired": 0}
    assert "events:" in _ok("fission", "process")
    assert len(events(rt, "Assist Given")) == 1

"""``siyu identity`` commands, in-process, on both engines."""

from __future__ import annotations

from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import Settings
from siyu.runtime import Runtime
from tests.identity.helpers import identify, ingest, track

runner = CliRunner()


def test_resolve_explain_split_evaluate(settings: Settings) -> None:
    with Runtime(settings) as rt:
        rt.init()
        ingest(rt, "shopify", [identify("6100000061", email="max@mail.co", day=1)])
        ingest(rt, "instagram", [identify("17841400000000061", email="max@mail.co", day=2)])

    result = runner.invoke(app, ["identity", "resolve"])
    assert result.exit_code == 0, result.output
    assert "-> 1 customers (0 identifiers kept apart" in result.output

    result = runner.invoke(app, ["identity", "explain", "email:max@mail.co"])
    assert result.exit_code == 0, result.output
    assert "6100000061" in result.output
    assert "17841400000000061" in result.output
    assert "same_event" in result.output
    # Times to the second, in UTC (stored to the microsecond).
    assert "seen 2025-01-01 10:00:00 .. 2025-01-01 10:00:00 UTC" in result.output
    assert ".000000" not in result.output

    result = runner.invoke(app, ["identity", "split", "email:max@mail.co", "--note", "test"])
    assert result.exit_code == 0, result.output
    assert "Detached email:max@mail.co" in result.output

    # Without the demo's truth there is nothing to measure against: a clear error, no 1.0.
    result = runner.invoke(app, ["identity", "evaluate"])
    assert result.exit_code != 0
    assert "no demo truth" in str(result.exception)


def test_resolve_counts_customer_records_not_identifier_groups(settings: Settings) -> None:
    """A store tablet's browser id seen with two shoppers is its own identity group but no
    customer: the summary counts the customers (as tiers and scores do) and the shared id."""
    with Runtime(settings) as rt:
        rt.init()
        accounts = ("6100000071", "6100000072")
        shoppers = [track(u, anonymous_id="tablet-9", day=d) for d, u in enumerate(accounts, 1)]
        ingest(rt, "shopify", shoppers)

    result = runner.invoke(app, ["identity", "resolve"])
    assert result.exit_code == 0, result.output
    assert "-> 2 customers (1 identifiers kept apart on no customer's record)" in " ".join(
        result.output.split()
    )


def test_evaluate_prints_precision_recall_and_why_pairs_were_missed(settings: Settings) -> None:
    from datetime import date

    from siyu.demo.load import load_demo

    with Runtime(settings) as rt:
        rt.init()
        load_demo(rt, rt.workspace(), customers=100, seed=5, as_of=date(2025, 6, 30))
    assert runner.invoke(app, ["identity", "resolve"]).exit_code == 0
    result = runner.invoke(app, ["identity", "evaluate"])
    assert result.exit_code == 0, result.output
    assert "precision " in result.output
    assert "recall " in result.output
    assert "with no linking evidence" in result.output
    assert "kept apart by the merge rules" in result.output

"""`siyu demo --no-serve` runs the whole loop on the demo brand, on both engines.

The demo is the product's first impression: after loading it must resolve identities, predict,
segment and run loyalty on what it loaded, and say plainly which stage the data could not support.
"""

from __future__ import annotations

import sqlalchemy as sa
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import load_settings
from siyu.runtime import Runtime

runner = CliRunner()


def _count(url: str, sql: str) -> int:
    with Runtime(load_settings(database_url=url)) as rt, rt.db.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_demo_runs_the_loop_after_loading(cli_env: str) -> None:
    result = runner.invoke(
        app, ["demo", "--customers", "300", "--seed", "3", "--as-of", "2025-06-30", "--no-serve"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    out = result.output
    for stage in (
        "Resolving identities (One-ID)",
        "Predicting CLV, churn risk and recommendations",
        "Computing RFM, lifecycle tiers and tags",
        "Loyalty: points from orders",
        "duplicate suggestions for review",
        "Demo brand ready",
    ):
        assert stage in out
    # 300 people are fewer buyers than the CLV minimum: the demo says which minimum failed.
    assert "CLV skipped:" in out
    assert "buyers" in out.split("CLV skipped:")[1].splitlines()[0]
    assert _count(cli_env, "SELECT count(*) FROM customer_tags") > 0
    assert _count(cli_env, "SELECT count(*) FROM customer_recommendations") > 0
    assert _count(cli_env, "SELECT count(*) FROM points_ledger") > 0
    # Churn risk exists for buyers, by the model or, on this little data, by the rules.
    assert _count(cli_env, "SELECT count(*) FROM customer_scores WHERE churn_risk IS NOT NULL") > 0
    # Loyalty's events went to their resolved customers and were resolved in the demo: no
    # customer row outside One-ID's customers, no event on a missing customer, and nothing
    # left for `siyu serve`'s background resolver.
    assert _count(cli_env, "SELECT count(*) FROM events WHERE event = 'Points Earned'") > 0
    orphans = (
        "SELECT count(*) FROM customers c WHERE NOT EXISTS "
        "(SELECT 1 FROM identity_anchors a WHERE a.customer_id = c.customer_id)"
    )
    assert _count(cli_env, orphans) == 0
    lost = (
        "SELECT count(*) FROM events e WHERE NOT EXISTS "
        "(SELECT 1 FROM customers c WHERE c.customer_id = e.customer_id)"
    )
    assert _count(cli_env, lost) == 0
    pending = (
        "SELECT count(*) FROM events e, identity_state s "
        "WHERE e.workspace_id = s.workspace_id AND e.received_at > s.resolved_until"
    )
    assert _count(cli_env, pending) == 0
    assert "events loyalty published" in out

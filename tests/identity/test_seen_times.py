"""An identifier's seen times count the customer's own acts, as her profile does (both engines).

Messages siyu sends and the points it credits are stored as events on the customer, and they
carry her identifiers (a WhatsApp status carries her wa_id). They must not make an identifier
look recently seen, or the profile would say "last seen on the 4th" beside a phone "last seen
on the 20th", the day a win-back message was delivered.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import command

from siyu.identity.graph import resolve_new_events, resolve_workspace
from siyu.runtime import Runtime
from siyu.store import upgrade
from siyu.store.migrate import alembic_config
from tests.identity.helpers import identify, ingest, scalar, status, track

SEEN = "SELECT kind, value, first_seen_at, last_seen_at FROM identities ORDER BY 1, 2"


def _seen(rt: Runtime) -> dict[str, tuple[datetime, datetime]]:
    with rt.db.engine.connect() as conn:
        return {f"{k}:{v}": (a, b) for k, v, a, b in conn.execute(sa.text(SEEN))}


def _customer_seen(rt: Runtime, key: str) -> tuple[datetime, datetime]:
    kind, _, value = key.partition(":")
    with rt.db.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT c.first_seen_at, c.last_seen_at FROM customers c JOIN identities i "
                "ON i.customer_id = c.customer_id WHERE i.kind = :k AND i.value = :v"
            ),
            {"k": kind, "v": value},
        ).one()
    return row[0], row[1]


def _story(rt: Runtime) -> None:
    ingest(
        rt,
        "shopify",
        [
            identify("6100000071", email="mia@mail.co", phone="+6281200007171", day=2),
            track("6100000071", day=4),
        ],
    )
    # Siyu's own messages to her, delivered and read later, and statuses for a number that
    # never did anything itself.
    ingest(
        rt,
        "whatsapp",
        [
            status("6281200007171", day=20),
            status("6281200007171", day=21, event="Message Read"),
            status("6281200009999", day=22),
            status("6281200009999", day=23, event="Message Read"),
        ],
    )


def test_seen_times_ignore_events_about_the_customer(rt: Runtime) -> None:
    _story(rt)
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, rt.workspace().workspace_id)
    seen = _seen(rt)
    identify_at, track_at = datetime(2025, 1, 2, 10), datetime(2025, 1, 4, 11)
    assert seen["phone:+6281200007171"] == (identify_at, identify_at)
    assert seen["email:mia@mail.co"] == (identify_at, identify_at)
    assert seen["shopify_customer_id:6100000071"] == (identify_at, track_at)
    # Her profile and her identifiers tell the same story.
    assert _customer_seen(rt, "phone:+6281200007171") == (identify_at, track_at)
    # A number only status callbacks carried is still seen, when they came.
    assert seen["phone:+6281200009999"] == (datetime(2025, 1, 22, 11), datetime(2025, 1, 23, 11))
    # The statuses are still hers: they moved to her customer, nothing was dropped.
    assert scalar(rt, "SELECT count(DISTINCT customer_id) FROM events") == 2


def test_incremental_runs_give_the_same_seen_times(rt: Runtime) -> None:
    """Batch by batch, statuses first, the stored tuples keep their own-act times, so the
    incremental path ends where a full rebuild does."""
    ws = rt.workspace().workspace_id
    ingest(rt, "whatsapp", [status("6281200007171", day=20, message_id="st-1")])
    with rt.db.engine.begin() as conn:
        resolve_new_events(conn, ws, ["st-1"])
    assert _seen(rt)["phone:+6281200007171"] == (datetime(2025, 1, 20, 11),) * 2
    ingest(
        rt,
        "shopify",
        [identify("6100000071", phone="+6281200007171", day=2, message_id="id-1")],
    )
    with rt.db.engine.begin() as conn:
        resolve_new_events(conn, ws, ["id-1"])
    incremental = _seen(rt)
    assert incremental["phone:+6281200007171"] == (datetime(2025, 1, 2, 10),) * 2
    # The status sender's customer row folded into hers without its seen times.
    customer = _customer_seen(rt, "phone:+6281200007171")
    assert customer == (datetime(2025, 1, 2, 10),) * 2
    assert scalar(rt, "SELECT count(*) FROM customers") == 1
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    assert _seen(rt) == incremental
    assert _customer_seen(rt, "phone:+6281200007171") == customer


TUPLES = (
    "SELECT sender, user_id, phone, first_seen, last_seen, own_first_seen, own_last_seen "
    "FROM identity_tuples ORDER BY 1, 2, 3, 4"
)


def test_migration_0024_rebuilds_the_tuples_a_full_run_stores(rt: Runtime) -> None:
    """Downgraded past 0024 (the tuples lose their own-act times) and upgraded again, the
    stored tuples are those a full run refreshes them to (both engines)."""
    _story(rt)
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, rt.workspace().workspace_id)
        refreshed = conn.execute(sa.text(TUPLES)).all()
    statuses = [r for r in refreshed if r[1] == "6281200009999"]
    assert statuses
    assert all(r[5] is None and r[6] is None for r in statuses)
    assert any(r[5] is not None for r in refreshed)
    with rt.db.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0022")
    upgrade(rt.db)
    with rt.db.engine.connect() as conn:
        assert conn.execute(sa.text(TUPLES)).all() == refreshed

"""Journeys send only through the messaging slice: outcomes recorded, never twice, policy obeyed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from siyu.errors import InvalidInput
from siyu.messaging.templates import save_template, template_from_doc
from siyu.registry import registry
from siyu.runtime import Runtime
from tests.journeys.helpers import (
    MIN,
    enrollments,
    identify,
    ingest,
    publish_yaml,
    rows,
    run,
    track,
)

T = datetime(2026, 3, 2, 16, 0)  # Monday 16:00 UTC: 11:00 in New York, 01:00 in Tokyo


def template(rt: Runtime, name: str, text: str, channel: str = "email") -> None:
    doc: dict[str, Any] = {
        "name": name,
        "channel": channel,
        "variants": {"en": {"subject": f"{name} for {{{{ customer.first_name }}}}", "text": text}},
    }
    with rt.db.engine.begin() as conn:
        save_template(
            conn, rt.workspace().workspace_id, template_from_doc(doc, registry.channels.names()), T
        )


JOURNEY = """
id: greet
name: Greet
trigger: {event: {name: Signed Up}}
steps:
  - id: receipt
    send: {channel: outbox, template: receipt, purpose: transactional}
  - id: promo
    send: {channel: outbox, template: promo, context: {offer: "10%"}}
  - id: after
    set_trait: {name: promoted, value: true}
"""


def outbox_per_key(rt: Runtime) -> dict[tuple[str, str], int]:
    found = rows(
        rt,
        "SELECT m.journey_id, m.step_id, m.customer_id, count(*) FROM outbox o JOIN messages m "
        "ON m.message_id = o.message_id GROUP BY m.journey_id, m.step_id, m.customer_id",
    )
    return {(r[2], r[1]): int(r[3]) for r in found}


def test_outcomes_are_recorded_and_nothing_is_sent_twice(rt: Runtime) -> None:
    template(rt, "receipt", "Thanks {{ customer.first_name }}.")
    template(rt, "promo", "Take {{ offer }} off.")
    publish_yaml(rt, JOURNEY, T)
    ingest(
        rt,
        [
            identify(
                "ny",
                T,
                first_name="Nia",
                email="nia@example.com",
                country="US",
                timezone="America/New_York",
            ),
            identify(
                "de",
                T,
                first_name="Dirk",
                email="dirk@example.com",
                country="DE",
                timezone="Europe/Berlin",
            ),
            identify(
                "tokyo",
                T,
                first_name="Taro",
                email="taro@example.com",
                country="US",
                timezone="Asia/Tokyo",
            ),
            *(track(u, "Signed Up", T) for u in ("ny", "de", "tokyo")),
        ],
        at=T,
    )
    run(rt, T + MIN)
    ids = dict(rows(rt, "SELECT user_id, customer_id FROM customers"))
    state = {
        (u, s): (st, outcome, code)
        for u, s, st, outcome, code in rows(
            rt,
            "SELECT c.user_id, r.step_id, r.state, r.outcome, r.reason_code "
            "FROM journey_step_runs r JOIN customers c ON c.customer_id = r.customer_id",
        )
    }
    # Transactional: sent to all three. Marketing: sent in New York's morning, skipped without
    # the opt-in the EU requires, deferred out of Tokyo's quiet hours (not dropped).
    for user in ("ny", "de", "tokyo"):
        assert state[(user, "receipt")][:2] == ("done", "sent")
    assert state[("ny", "promo")][:2] == ("done", "sent")
    assert state[("de", "promo")][:2] == ("skipped", "skipped")
    assert state[("de", "promo")][2]
    assert state[("tokyo", "promo")][:2] == ("due", "deferred")
    assert state[("de", "after")][0] == "done"  # a skipped message does not stop the journey
    (due,) = rows(
        rt,
        "SELECT due_at FROM journey_step_runs WHERE step_id = 'promo' AND customer_id = :c",
        c=ids["tokyo"],
    )[0]
    assert due > T + MIN  # the end of Tokyo's quiet hours, per the messaging policy

    # A worker that crashed after sending but before recording: its runs are claimed again
    # when the lease expires, and the messaging slice answers "duplicate" for the same key.
    with rt.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE journey_step_runs SET state = 'running', lease_until = :t, "
                "worker = 'dead-worker' WHERE step_id = 'receipt'"
            ),
            {"t": T + MIN},
        )
    report = run(rt, T + 10 * MIN)
    assert report.outcomes.get("duplicate") == 3
    counts = outbox_per_key(rt)
    assert all(n == 1 for n in counts.values())
    assert counts[(ids["ny"], "receipt")] == 1

    run(rt, due + MIN)
    assert outbox_per_key(rt)[(ids["tokyo"], "promo")] == 1
    assert enrollments(rt, "greet") == dict.fromkeys(("ny", "de", "tokyo"), ("completed", None))
    (body,) = rows(
        rt,
        "SELECT o.body FROM outbox o JOIN messages m ON m.message_id = o.message_id "
        "WHERE m.step_id = 'promo' AND m.customer_id = :c",
        c=ids["ny"],
    )[0]
    assert "Take 10% off." in body


def test_publish_checks_templates_against_the_step(rt: Runtime) -> None:
    template(rt, "promo", "Take {{ offer }} off.")
    with pytest.raises(InvalidInput) as err:
        publish_yaml(rt, JOURNEY.replace('context: {offer: "10%"}', "context: {}"), T)
    problems = err.value.details["problems"]
    assert any(p.startswith("steps[0] ('receipt').send.template:") for p in problems)
    assert any(
        p.startswith("steps[1] ('promo').send.template:") and "'offer'" in p for p in problems
    )
    with pytest.raises(InvalidInput) as err:
        publish_yaml(
            rt,
            JOURNEY.replace(
                "channel: outbox, template: receipt", "channel: fax, template: receipt"
            ),
            T,
        )
    assert "steps[0] ('receipt').send.channel: unknown channel 'fax'" in str(err.value)


def test_library_journeys_enable_with_their_templates(rt: Runtime) -> None:
    from siyu.journeys.library import enable, library

    ws = rt.workspace().workspace_id
    for item in library():
        result, added = enable(rt.db, ws, item.journey_id, T)
        assert result.version == 1
    (n,) = rows(rt, "SELECT count(*) FROM journeys WHERE status = 'active'")[0]
    assert n == len(library()) >= 10
    # The brand's own template is never overwritten by a later enable.
    template(rt, "journey_welcome", "Our own words.")
    _, added = enable(rt.db, ws, "welcome", T + timedelta(days=1))
    assert "journey_welcome" not in added

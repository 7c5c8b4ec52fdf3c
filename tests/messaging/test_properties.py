"""Property: whatever the interleaving of sends, repeats, senders that stop after claiming and
consent changes, each idempotency key reaches the outbox at most once, and only while the
customer's consent (EU: opt-in) is granted at the moment of sending."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from siyu.config import load_settings
from siyu.messaging.send import _Batch, send_many
from siyu.runtime import Runtime
from tests.messaging.helpers import HELLO, T0, consent, customer, request, rows, template

PEOPLE = 3
KEYS = 5
counter = itertools.count()

ops = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("withdraw"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("send"), st.sets(st.integers(0, KEYS - 1), min_size=1)),
        st.tuples(st.just("stop_after_claim"), st.sets(st.integers(0, KEYS - 1), min_size=1)),
        st.tuples(st.just("wait"), st.integers(1, 15)),  # minutes
    ),
    min_size=3,
    max_size=10,
)


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=ops)
def test_at_most_once_and_never_without_consent(
    rt: Runtime, plan: list[tuple[str, object]]
) -> None:
    run = next(counter)
    if not rows(rt, "SELECT 1 FROM message_templates WHERE name = 'hello'"):
        template(rt, HELLO)  # once per database (examples share the test's database)
    # no daily cap, so that consent and idempotency alone decide
    s = load_settings(messaging_cap_per_day=0, messaging_cap_per_window=0)
    users = [f"p{run}-{i}" for i in range(PEOPLE)]
    cids = [
        customer(rt, u, email=f"{u}@example.de", first_name="P", country="DE", at=T0) for u in users
    ]
    granted = [False] * PEOPLE
    now = T0  # 15:00 in Berlin; at most 10 x 15 minutes later it is still before quiet hours
    ws = rt.workspace().workspace_id

    def req(k: int):  # type: ignore[no-untyped-def]
        return request(rt, cids[k % PEOPLE], f"r{run}-k{k}")

    for op, arg in plan:
        if op == "grant" or op == "withdraw":
            i = int(arg)  # type: ignore[call-overload]
            consent(rt, users[i], "email", "granted" if op == "grant" else "withdrawn", now)
            granted[i] = op == "grant"
        elif op == "send":
            keys = sorted(arg)  # type: ignore[call-overload]
            before = {r[0] for r in rows(rt, "SELECT message_id FROM outbox")}
            out = send_many(rt.db, [req(k) for k in keys], now=now, settings=s)
            new = {r[0]: r[1] for r in rows(rt, "SELECT message_id, customer_id FROM outbox")}
            for mid, cid in new.items():
                if mid not in before:  # sent now: the customer must have consent now
                    assert granted[cids.index(cid)], (plan, mid)
            for k, o in zip(keys, out, strict=True):
                if o.status.value == "sent":
                    assert granted[k % PEOPLE]
        elif op == "stop_after_claim":
            # a sender that claimed these keys and died before deciding or delivering
            items = [(i, req(k)) for i, k in enumerate(sorted(arg))]  # type: ignore[call-overload]
            _Batch(rt.db, s, ws, now, items, [None] * len(items))._claim()
        else:
            now += timedelta(minutes=int(arg))  # type: ignore[call-overload]
    # later, once every claim has timed out, everything still pending is asked for again
    final = now + timedelta(minutes=11)
    send_many(rt.db, [req(k) for k in range(KEYS)], now=final, settings=s)
    per_key = rows(
        rt,
        "SELECT m.idempotency_key, count(*) FROM outbox o JOIN messages m "
        "ON m.message_id = o.message_id WHERE m.idempotency_key LIKE :p "
        "GROUP BY m.idempotency_key",
        p=f"r{run}-%",
    )
    assert all(n == 1 for _, n in per_key), per_key
    # every key that was sent is recorded as sent, and nothing is left claimed
    states = rows(
        rt,
        "SELECT status, count(*) FROM messages WHERE idempotency_key LIKE :p GROUP BY status",
        p=f"r{run}-%",
    )
    assert not {"claimed", "failed", "sending"} & set(dict(states)), states
    assert dict(states).get("sent", 0) == len(per_key)
    # everything else was refused for consent, with the reason recorded
    reasons = rows(
        rt,
        "SELECT DISTINCT reason_code FROM messages WHERE idempotency_key LIKE :p "
        "AND status <> 'sent'",
        p=f"r{run}-%",
    )
    assert {r[0] for r in reasons} <= {"consent_missing", "consent_withdrawn"}

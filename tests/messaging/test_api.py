"""The messaging API: templates, preview, suppressions and the message log (both engines)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from siyu.access import create_key
from siyu.api import create_app
from siyu.config import Settings
from siyu.messaging.contract import SendStatus
from siyu.messaging.send import send
from siyu.runtime import Runtime
from tests.api.conftest import bearer
from tests.messaging.helpers import HELLO, T0, customer, request


@pytest.fixture
def api(settings: Settings, rt: Runtime) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with rt.db.engine.begin() as conn:
        _, secret = create_key(conn, rt.workspace().workspace_id, "t", frozenset({"write"}))
    with TestClient(create_app(settings, rt)) as client:
        yield client, bearer(secret)


def test_templates_suppressions_and_log(
    rt: Runtime, api: tuple[TestClient, dict[str, str]]
) -> None:
    client, auth = api
    bad = {**HELLO, "variants": {"en": {"subject": "Hi {{ x", "text": "t"}}}
    refused = client.post("/api/templates", json=bad, headers=auth)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid"
    assert (
        "variants['en'].subject: template syntax error on line 1"
        in (refused.json()["error"]["message"])
    )
    made = client.post("/api/templates", json=HELLO, headers=auth)
    assert made.status_code == 201
    assert made.json() == {"name": "hello", "created": True, "locales": ["de-DE", "en"]}
    listed = client.get("/api/templates", headers=auth).json()
    assert [(t["name"], t["locales"]) for t in listed] == [("hello", ["de-DE", "en"])]
    shown = client.get("/api/templates/hello", headers=auth).json()
    assert shown["variants"]["en"]["subject"] == "Hi {{ customer.first_name }}"
    assert client.get("/api/templates/nope", headers=auth).status_code == 404

    cid = customer(rt, "at1", email="al@example.at", first_name="Al", country="AT")
    pv = client.post("/api/templates/hello/preview", json={"customer_id": cid}, headers=auth)
    assert pv.status_code == 200, pv.text
    # Austria: no language given, the market language is German -> the de-DE variant
    assert (pv.json()["locale"], pv.json()["subject"]) == ("de-DE", "Hallo Al")

    sup = client.post(
        "/api/suppressions",
        json={"channel": "email", "address": "AL@example.at", "reason": "bounce"},
        headers=auth,
    )
    assert sup.status_code == 201
    assert sup.json() == {"channel": "email", "address": "al@example.at", "created": True}
    got = client.get("/api/suppressions?channel=email", headers=auth).json()
    assert [(s["address"], s["reason"]) for s in got] == [("al@example.at", "bounce")]
    out = send(rt.db, request(rt, cid, "k1", purpose="transactional"), now=T0)
    assert (out.status, out.reason_code) == (SendStatus.SKIPPED, "suppressed")
    log = client.get(f"/api/messages?customer_id={cid}", headers=auth).json()
    assert [(m["status"], m["reason_code"]) for m in log] == [("skipped", "suppressed")]
    assert "bounce" in log[0]["reason"]
    gone = client.delete("/api/suppressions/email/al@example.at", headers=auth)
    assert gone.json()["removed"] is True
    again = client.delete("/api/suppressions/email/al@example.at", headers=auth)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"
    bad_sup = client.post(
        "/api/suppressions", json={"channel": "fax", "address": "1"}, headers=auth
    )
    assert bad_sup.status_code == 400

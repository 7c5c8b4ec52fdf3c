"""The public invite link /r/{code} on both engines: visit counted, friend sent to the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from siyu.api import create_app
from siyu.api.routers.invites import VISITOR_COOKIE, landing_url
from siyu.config import Settings
from siyu.fission import referrals
from siyu.fission.common import utcnow
from siyu.fission.metrics import fission_metrics
from siyu.runtime import Runtime
from tests.fission.helpers import customer, events

STORE = "https://shop.example.com/welcome?utm_source=invite"


@pytest.fixture
def public(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    configured = rt.settings.model_copy(update={"referral_landing_url": STORE})
    monkeypatch.setattr(rt, "settings", configured)
    with TestClient(create_app(rt.settings, rt), follow_redirects=False) as c:
        yield c  # no API key: the link is public


def test_landing_url_keeps_the_query_and_replaces_ref() -> None:
    url = landing_url("https://s.example/p?a=1&ref=OLD", "ABC123")
    assert url == "https://s.example/p?a=1&ref=ABC123"


def test_visit_is_an_event_and_redirects_with_ref(rt: Runtime, public: TestClient) -> None:
    koc = customer(rt, "koc")
    code = referrals.invite_code(rt.db, rt.workspace().workspace_id, koc).code
    first = public.get(f"/r/{code.lower()}")
    assert first.status_code == 302
    assert first.headers["location"] == f"{STORE}&ref={code}"
    visitor = first.cookies[VISITOR_COOKIE]
    second = public.get(f"/r/{code}")  # the same browser: the cookie is sent back
    assert second.status_code == 302
    clicks = events(rt, "Referral Link Clicked")
    assert [c["referral_code"] for c in clicks] == [code, code]
    assert VISITOR_COOKIE not in second.cookies or second.cookies[VISITOR_COOKIE] == visitor
    now = utcnow()
    day = timedelta(days=1)
    metrics = fission_metrics(rt.db, rt.workspace().workspace_id, now - day, now + day)
    assert metrics.visits == 2
    assert [(i.customer_id, i.visits) for i in metrics.top_inviters] == [(koc, 2)]


def test_unknown_code_is_404_in_the_envelope(rt: Runtime, public: TestClient) -> None:
    missing = public.get("/r/NOPE42")
    assert missing.status_code == 404
    assert "NOPE42" in missing.json()["error"]["message"]
    assert events(rt, "Referral Link Clicked") == []
    bad = public.get("/r/not a code!")
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "code"


def test_links_answer_404_until_the_landing_page_is_set(settings: Settings, rt: Runtime) -> None:
    with TestClient(create_app(settings, rt), follow_redirects=False) as c:
        off = c.get("/r/ABC123")
    assert off.status_code == 404
    assert "SIYU_REFERRAL_LANDING_URL" in off.json()["error"]["hint"]

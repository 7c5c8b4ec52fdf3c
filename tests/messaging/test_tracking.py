"""Email opens and clicks: links in a real received email lead through siyu's tracking routes,
which record the events journeys measure and redirect only where the token says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from siyu.api import create_app
from siyu.config import Settings, load_settings
from siyu.messaging.contract import SendStatus
from siyu.messaging.send import send
from siyu.runtime import Runtime
from tests.messaging.helpers import T0, consent, customer, request, rows, template
from tests.messaging.servers import Inbox, smtp_server

NEWS = {
    "name": "news",
    "channel": "email",
    "variants": {
        "en": {
            "subject": "New in",
            "text": "See https://shop.example/new",
            "html": '<html><body><p><a href="https://shop.example/new?c=1&amp;d=2">New</a> '
            "<a href='https://shop.example/sale'>Sale</a></p>"
            "<p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p></body></html>",
        }
    },
}


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, Settings]]:
    with smtp_server() as (inbox, port):
        monkeypatch.setenv("SIYU_SMTP_PORT", str(port))
        monkeypatch.setenv("SIYU_PUBLIC_BASE_URL", "https://siyu.brand.example")
        yield inbox, load_settings()


def test_opens_and_clicks_are_recorded(rt: Runtime, smtp: tuple[Inbox, Settings]) -> None:
    inbox, settings = smtp
    template(rt, NEWS)
    cid = customer(rt, "de1", email="bob@example.de", country="DE", first_name="Bob")
    consent(rt, "de1", "email", "granted", T0 - timedelta(days=1))
    req = request(rt, cid, "n1", channel="email", tpl="news", journey_id="spring")
    assert send(rt.db, req, now=T0, settings=settings).status == SendStatus.SENT
    html = inbox.messages[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
    links = re.findall(r"""href=["']([^"']+)["']""", html)
    assert len(links) == 3
    assert links[0].startswith("https://siyu.brand.example/t/c/")
    assert links[1].startswith("https://siyu.brand.example/t/c/")
    assert links[2].startswith("https://siyu.brand.example/unsubscribe/")  # left alone
    (pixel,) = re.findall(r'<img src="([^"]+)"', html)
    assert pixel.startswith("https://siyu.brand.example/t/o/")
    assert html.index("<img") < html.index("</body>")

    base = "https://siyu.brand.example"
    with TestClient(create_app(settings, rt)) as client:
        first = client.get(links[0].removeprefix(base), follow_redirects=False)
        assert first.status_code == 302
        assert first.headers["location"] == "https://shop.example/new?c=1&d=2"
        client.get(links[0].removeprefix(base), follow_redirects=False)  # a second click
        sale = client.get(links[1].removeprefix(base), follow_redirects=False)
        assert sale.headers["location"] == "https://shop.example/sale"
        img = client.get(pixel.removeprefix(base))
        assert (img.status_code, img.headers["content-type"]) == (200, "image/gif")
        assert img.content.startswith(b"GIF89a")
        client.get(pixel.removeprefix(base))
        # a token pointed at another site is refused, not followed
        forged = links[1].removeprefix(base)[:-4] + "AAAA"
        bad = client.get(forged, follow_redirects=False)
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid"
    got = rows(
        rt,
        "SELECT event, count(*) FROM events WHERE event IN ('Email Opened', 'Email Clicked') "
        "GROUP BY event ORDER BY event",
    )
    assert got == [("Email Clicked", 2), ("Email Opened", 1)]
    (status, read_at) = rows(rt, "SELECT status, read_at FROM messages")[0]
    assert status == "read"
    assert read_at is not None


def test_tracking_can_be_turned_off(
    rt: Runtime, smtp: tuple[Inbox, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, _ = smtp
    monkeypatch.setenv("SIYU_MESSAGING_EMAIL_TRACKING", "false")
    settings = load_settings()
    template(rt, NEWS)
    cid = customer(rt, "us1", email="ann@example.com", country="US", first_name="Ann")
    assert send(rt.db, request(rt, cid, "n1", "email", "news"), now=T0, settings=settings).status
    html = inbox.messages[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "/t/c/" not in html
    assert "/t/o/" not in html
    assert 'href="https://shop.example/new?c=1&amp;d=2"' in html

"""Templates: the Jinja2 sandbox holds, locale fallback, Babel formatting, missing variables
caught at publish time."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from jinja2.exceptions import SecurityError

from siyu.errors import InvalidInput
from siyu.messaging import render as r
from siyu.messaging.contract import SendStatus
from siyu.messaging.send import send
from siyu.messaging.templates import (
    MessageTemplate,
    Variant,
    render_for,
    template_from_doc,
    validate_template,
)
from siyu.runtime import Runtime
from tests.messaging.helpers import T0, customer, request, rows, template

CHANNELS = ["email", "sms", "whatsapp", "webhook", "outbox"]
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ customer.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ (customer.items).__self__.__class__ }}",
    "{{ ''.format.__globals__ }}",
]
CUSTOMER = {
    "customer_id": "c1",
    "email": "a@example.com",
    "first_name": "Ana",
    "country": "BR",
    "language": "pt",
    "currency": "BRL",
}


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_refuses_escapes(source: str) -> None:
    t = MessageTemplate("x", "email", "en", None, {"en": Variant("en", "s", source)})
    with pytest.raises(SecurityError, match="is unsafe"):
        render_for(t, CUSTOMER, {}, ZoneInfo("UTC"), "en")


def test_sandbox_escape_fails_the_send_cleanly(rt: Runtime) -> None:
    template(
        rt,
        {
            "name": "evil",
            "channel": "outbox",
            "variants": {"en": {"text": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}},
        },
    )
    cid = customer(rt, "u1", email="u1@example.com", country="US")
    out = send(rt.db, request(rt, cid, "e1", tpl="evil"), now=T0)
    assert (out.status, out.reason_code) == (SendStatus.FAILED, "template_error")
    assert "failed to render" in (out.reason or "")
    assert rows(rt, "SELECT count(*) FROM outbox") == [(0,)]


def test_html_is_escaped_text_is_not() -> None:
    t = MessageTemplate(
        "x", "email", "en", None, {"en": Variant("en", "Hi {{ name }}", "{{ name }}", "{{ name }}")}
    )
    out = render_for(t, CUSTOMER, {"name": "<b>Tom & Jerry</b>"}, ZoneInfo("UTC"), "en")
    assert out.text == "<b>Tom & Jerry</b>"
    assert out.html == "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;"


@pytest.mark.parametrize(
    ("available", "language", "country", "expected"),
    [
        (["en", "de-DE", "fr-FR"], "fr-CA", "CA", "fr-FR"),  # same language, other country
        (["en", "de-DE", "de-AT"], "de-AT", "AT", "de-AT"),  # exact match first
        (["en", "de-DE", "fr-FR"], None, "CH", "de-DE"),  # market language (Switzerland: de)
        (["en", "fr-FR"], None, "CH", "fr-FR"),  # the market's next official language
        (["en", "de-DE"], "es", "US", "en"),  # nothing fits: the default
        (["en", "pt-PT"], "pt-BR", "BR", "pt-PT"),
        (["en", "zh-CN"], None, "CN", "zh-CN"),
    ],
)
def test_locale_fallback(
    available: list[str], language: str | None, country: str, expected: str
) -> None:
    assert r.pick_locale(available, language, country, "en") == expected


def test_money_and_dates_in_the_customers_locale() -> None:
    t = MessageTemplate(
        "x",
        "email",
        "en",
        None,
        {
            "en": Variant("en", "s", "{{ total | money }} {{ at | datetime('short') }}"),
            "pt": Variant("pt", "s", "{{ total | money }} em {{ at | date('long') }}"),
        },
    )
    at = datetime(2026, 3, 2, 2, 30, tzinfo=UTC)  # 1 March, 23:30 in Sao Paulo
    out = render_for(t, CUSTOMER, {"total": 1234.5, "at": at}, ZoneInfo("America/Sao_Paulo"), "en")
    assert out.locale == "pt"
    assert (out.text or "").replace("\xa0", " ") == "R$ 1.234,50 em 1 de março de 2026"


def test_template_document_errors_name_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        template_from_doc({"name": "x", "channel": "fax", "variants": {}}, CHANNELS)
    assert info.value.field == "channel"
    with pytest.raises(InvalidInput) as info:
        template_from_doc(
            {"name": "x", "channel": "email", "variants": {"en": {"text": "no subject"}}},
            CHANNELS,
        )
    assert "variants['en']: an email needs a subject" in info.value.message
    with pytest.raises(InvalidInput) as info:
        template_from_doc(
            {"name": "x", "channel": "sms", "variants": {"en": {"text": "{% if %}"}}}, CHANNELS
        )
    assert "variants['en'].text: template syntax error on line 1" in info.value.message


def test_validate_template_catches_missing_variables(rt: Runtime) -> None:
    template(
        rt,
        {
            "name": "gift",
            "channel": "email",
            "default_locale": "en",
            "variants": {
                "en": {
                    "subject": "A gift, {{ customer.first_name }}",
                    "text": "{{ coupon.code }} {% for p in products %}{{ p }}{% endfor %}",
                },
                "de": {
                    "subject": "{{ customer.favourite_colour }}",
                    "text": "{{ coupon.code }} {{ unsubscribe_url }}",
                },
            },
        },
    )
    ws = rt.workspace().workspace_id
    problems = validate_template(rt.db, ws, "email", "gift", [])
    assert any("variant 'en' text uses the variable 'coupon'" in p for p in problems)
    assert any("variant 'en' text uses the variable 'products'" in p for p in problems)
    assert any("'customer.favourite_colour', which is not a customer field" in p for p in problems)
    # 'p' is the loop's own variable and unsubscribe_url is always provided
    assert not any("'p'" in p or "unsubscribe_url'" in p for p in problems)
    fixed = validate_template(rt.db, ws, "email", "gift", ["coupon", "products"])
    assert fixed == [
        "template 'gift' variant 'de' subject uses 'customer.favourite_colour', which is not a "
        "customer field (fields: birthday, country, currency, customer_id, email, first_name, "
        "id, language, last_name, name, phone, timezone, traits, user_id; others are in "
        "customer.traits)"
    ]
    assert validate_template(rt.db, ws, "sms", "gift", ["coupon", "products"])[0] == (
        "template 'gift' is for the email channel, not sms"
    )
    missing = validate_template(rt.db, ws, "email", "nope", [])
    assert missing[0].startswith("No message template named 'nope'.")

"""siyu templates | suppressions | messages, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from siyu.cli import app
from siyu.messaging.contract import SendStatus
from siyu.messaging.send import send
from siyu.runtime import Runtime
from tests.messaging.helpers import T0, customer, request

TEMPLATE = """
name: order_note
channel: email
default_locale: en
description: After an order
variants:
  en:
    subject: "Thanks {{ customer.first_name }}"
    text: "Total {{ order.total | money(order.currency) }}"
  de-DE:
    subject: "Danke {{ customer.first_name }}"
    text: "Summe {{ order.total | money(order.currency) }}"
"""


def test_templates_add_show_preview(rt: Runtime, tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "order.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    result = runner.invoke(app, ["templates", "add", str(path)])
    assert result.exit_code == 0, result.output
    assert "Added template 'order_note' (email; de-DE, en)." in result.output
    again = runner.invoke(app, ["templates", "add", str(path)])
    assert "Replaced template 'order_note'" in again.output

    listed = runner.invoke(app, ["templates", "list", "--json"])
    assert [t["name"] for t in json.loads(listed.output)] == ["order_note"]
    shown = runner.invoke(app, ["templates", "show", "order_note"])
    assert yaml.safe_load(shown.output)["variants"]["de-DE"]["subject"] == (
        "Danke {{ customer.first_name }}"
    )

    cid = customer(rt, "de1", email="bob@example.de", first_name="Bob", country="DE")
    result = runner.invoke(
        app,
        [
            "templates",
            "preview",
            "order_note",
            "--customer",
            cid,
            "--var",
            "order.total=1234.5",
            "--var",
            "order.currency=EUR",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["locale"], out["subject"]) == ("de-DE", "Danke Bob")
    assert out["text"].replace("\xa0", " ") == "Summe 1.234,50 €"
    # a missing variable says which, and how to pass it
    missing = runner.invoke(app, ["templates", "preview", "order_note", "--customer", cid])
    assert missing.exit_code != 0
    assert "'order' is undefined" in str(missing.exception)

    bad = tmp_path / "bad.yaml"
    bad.write_text(TEMPLATE.replace("{{ customer.first_name }}", "{{ customer.first_name "))
    result = runner.invoke(app, ["templates", "add", str(bad)])
    assert result.exit_code != 0
    assert "template syntax error on line 1" in str(result.exception)


def test_suppressions_and_message_log(rt: Runtime, tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "order.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    assert runner.invoke(app, ["templates", "add", str(path)]).exit_code == 0
    cid = customer(rt, "us1", email="Ann@Example.com", first_name="Ann", country="US")
    result = runner.invoke(
        app, ["suppressions", "add", "email", "ANN@example.com", "--reason", "complaint"]
    )
    assert result.exit_code == 0, result.output
    assert "Suppressed ann@example.com on email." in result.output
    listed = json.loads(runner.invoke(app, ["suppressions", "list", "--json"]).output)
    assert [(s["address"], s["reason"]) for s in listed] == [("ann@example.com", "complaint")]

    ctx = {"order": {"total": 5, "currency": "USD"}}
    req = request(rt, cid, "k1", channel="outbox", tpl="order_note", context=ctx)
    out = send(rt.db, req, now=T0)
    assert (out.status, out.reason_code) == (SendStatus.SKIPPED, "suppressed")
    log = json.loads(runner.invoke(app, ["messages", "--json"]).output)
    assert [(m["status"], m["reason_code"]) for m in log] == [("skipped", "suppressed")]
    assert "complaint" in log[0]["reason"]

    result = runner.invoke(app, ["suppressions", "remove", "email", "ann@example.com"])
    assert "Removed ann@example.com" in result.output
    result = runner.invoke(app, ["suppressions", "remove", "email", "ann@example.com"])
    assert result.exit_code != 0
    assert "is not suppressed" in str(result.exception)
    result = runner.invoke(app, ["suppressions", "add", "email", "not-an-address"])
    assert "'not-an-address' is not an email address" in str(result.exception)
    out = send(rt.db, request(rt, cid, "k2", tpl="order_note", context=ctx), now=T0)
    assert out.status == SendStatus.SENT

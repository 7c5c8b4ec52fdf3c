"""The golden record: survivorship with provenance, lookup by any identifier, sections."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import Settings
from siyu.errors import InvalidInput, NotFound
from siyu.identity.graph import resolve_workspace
from siyu.profiles import ProfileRequest, load_profile, survive
from siyu.profiles.traits import Candidate
from siyu.registry import registry
from siyu.runtime import Runtime
from tests.api.conftest import MakeKey, bearer
from tests.identity.helpers import identify, ingest, track

ADDRESS_STORE = {"line1": "Jl. Sudirman 1", "city": "Jakarta", "country": "ID"}
ADDRESS_CHAT = {"line1": "near the mall", "city": "Jakarta"}


def consent(user_id: str, purpose: str, channel: str, status: str, day: int) -> dict[str, Any]:
    msg = track(user_id, day=day, event="Consent Updated")
    msg["properties"] = {"purpose": purpose, "channel": channel, "status": status}
    return msg


def _load(rt: Runtime) -> None:
    """Ana: a Shopify account (store address, day 1) and Instagram (chat guess, day 5)."""
    ingest(
        rt,
        "shopify",
        [
            identify(
                "6100000001",
                day=1,
                email="ana@mail.co",
                phone="+62 812-3456-7890",
                first_name="Ana",
                address=ADDRESS_STORE,
            ),
            consent("6100000001", "marketing", "email", "granted", 2),
            consent("6100000001", "marketing", "email", "withdrawn", 6),
            consent("6100000001", "marketing", "sms", "granted", 3),
        ],
    )
    ingest(
        rt,
        "instagram",
        [
            identify(
                "17841400000000001",
                day=5,
                email="Ana@Mail.co",
                first_name="Ana Maria",
                last_name="",
                address=ADDRESS_CHAT,
            )
        ],
    )
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, rt.workspace().workspace_id)


def _profile(rt: Runtime, who: str, **kw: Any) -> dict[str, Any]:
    with rt.db.engine.connect() as conn:
        return load_profile(conn, rt.workspace().workspace_id, who, **kw)


def test_traits_survive_by_recency_or_source_priority_with_provenance(rt: Runtime) -> None:
    _load(rt)
    latest = _profile(rt, "ana@mail.co")
    traits = latest["traits"]
    # Most recent non-empty value by default: Instagram's newer name and address...
    assert traits["first_name"]["value"] == "Ana Maria"
    assert traits["first_name"]["source"] == "instagram"
    assert traits["first_name"]["rule"] == "most_recent"
    assert traits["first_name"]["candidates"] == 2
    assert traits["first_name"]["at"].startswith("2025-01-05")
    assert traits["address"]["value"] == ADDRESS_CHAT
    # ... an empty value never wins over an older real one, and the phone is kept from Shopify.
    assert "last_name" not in traits
    assert traits["phone"]["source"] == "shopify"

    store_first = _profile(rt, "ana@mail.co", trait_priority={"address": ["shopify"]})
    address = store_first["traits"]["address"]
    assert address["value"] == ADDRESS_STORE  # the whole object: parts are never mixed
    assert (address["source"], address["rule"]) == ("shopify", "source_priority")
    assert address["at"].startswith("2025-01-01")
    assert store_first["traits"]["first_name"]["value"] == "Ana Maria"


def test_survive_orders_by_priority_then_recency() -> None:
    from datetime import datetime

    def c(value: str, source: str, day: int) -> Candidate:
        return Candidate(value, f"src_{source}", source, source, datetime(2025, 1, day), f"m{day}")

    found = {"city": [c("A", "chat", 9), c("B", "woocommerce", 2), c("C", "shopify", 1)]}
    assert survive(found)["city"]["value"] == "A"
    assert survive(found, {"city": ["shopify", "woocommerce"]})["city"]["value"] == "C"
    assert survive(found, {"city": ["woocommerce", "shopify"]})["city"]["value"] == "B"
    # A listed source that said nothing: unlisted sources compete by recency.
    only = survive({"city": found["city"][:1]}, {"city": ["shopify"]})["city"]
    assert (only["value"], only["rule"]) == ("A", "most_recent")


def test_profile_by_any_identifier_has_every_section(rt: Runtime) -> None:
    _load(rt)
    by_phone = _profile(rt, "+6281234567890")
    for who in (
        "+62 812 3456 7890",
        "phone:+62 (812) 3456-7890",
        "email: ANA@mail.co ",
        "instagram:17841400000000001",
        by_phone["customer_id"],
    ):
        assert _profile(rt, who)["customer_id"] == by_phone["customer_id"], who
    assert {(r["kind"], r["value"]) for r in by_phone["identifiers"]} >= {
        ("email", "ana@mail.co"),
        ("phone", "+6281234567890"),
        ("shopify_customer_id", "6100000001"),
        ("instagram", "17841400000000001"),
    }
    latest = {(r["purpose"], r["channel"]): r["status"] for r in by_phone["consents"]}
    assert latest == {("marketing", "email"): "withdrawn", ("marketing", "sms"): "granted"}
    assert [e["type"] for e in by_phone["events"]][:1] == ["track"]  # newest first
    assert len(by_phone["events"]) == 5
    assert (
        _profile(rt, by_phone["customer_id"], recent=2)["events"][1]["timestamp"]
        >= (by_phone["events"][2]["timestamp"])
    )
    assert by_phone["orders"] == []
    assert "tiers" not in by_phone
    assert "scores" not in by_phone


def test_unknown_and_invalid_lookups_say_what_to_do(rt: Runtime) -> None:
    _load(rt)
    with pytest.raises(NotFound, match=r"No customer has the email 'bob@mail\.co'"):
        _profile(rt, "bob@mail.co")
    with pytest.raises(InvalidInput, match="phone"):
        _profile(rt, "phone:12")
    with pytest.raises(NotFound, match="No customer 'nobody'") as info:
        _profile(rt, "nobody")
    assert "kind:value" in info.value.hint


def test_an_identifier_kept_apart_says_why_it_has_no_profile(rt: Runtime) -> None:
    """A store tablet's browser id seen with several shoppers belongs to none of them: its
    lookup says so and why, instead of naming a customer id that has no profile."""
    accounts = ("6100000001", "6100000002")
    shoppers = [track(u, anonymous_id="tablet-1", day=d) for d, u in enumerate(accounts, 1)]
    ingest(rt, "shopify", shoppers)
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, rt.workspace().workspace_id)
    with pytest.raises(NotFound, match="seen with 2 different people") as info:
        _profile(rt, "anonymous_id:tablet-1")
    assert "No customer profile holds the anonymous_id 'tablet-1'" in info.value.message
    assert "siyu identity explain cus_" in info.value.hint
    assert _profile(rt, "shopify_customer_id:6100000001")["customer_id"].startswith("cus_")


def test_an_amazon_relay_address_is_found_as_an_email(rt: Runtime) -> None:
    # The graph keeps relay addresses as kind amazon_buyer; the operator has them as an email.
    ingest(
        rt, "amazon", [identify("AHH0UFT4PBXPA2", day=1, email="9zn7ylcvff@marketplace.amazon.de")]
    )
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    found = _profile(rt, "9ZN7YLCVFF@marketplace.amazon.de")
    assert ("amazon_buyer", "9zn7ylcvff@marketplace.amazon.de") in {
        (r["kind"], r["value"]) for r in found["identifiers"]
    }
    assert _profile(rt, "email:9zn7ylcvff@marketplace.amazon.de") == found


def test_merged_away_id_answers_with_the_survivor(rt: Runtime) -> None:
    ingest(rt, "shopify", [identify("6100000002", day=1, email="bo@mail.co")])
    ingest(rt, "instagram", [identify("17841400000000002", day=2, email="bo@mail.co")])
    from siyu.collect.rows import customer_key

    ws = rt.workspace().workspace_id
    late = str(customer_key(ws, "17841400000000002", None))
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    profile = _profile(rt, late)
    assert profile["customer_id"] != late
    assert profile["customer_id"] == _profile(rt, "bo@mail.co")["customer_id"]


def test_other_slices_add_sections(rt: Runtime) -> None:
    _load(rt)

    def points(request: ProfileRequest) -> dict[str, int]:
        return {"balance": len(request.customer_id)}

    registry.profile_sections.register("test_points", points)
    try:
        profile = _profile(rt, "ana@mail.co")
    finally:
        registry.profile_sections._items.pop("test_points")
    assert profile["test_points"] == {"balance": len(profile["customer_id"])}


def test_api_lookup_and_by_id(client: TestClient, make_key: MakeKey, rt: Runtime) -> None:
    _load(rt)
    read = bearer(make_key("read"))
    found = client.get("/api/customers/lookup", params={"phone": "+62 812 3456 7890"}, headers=read)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["traits"]["email"]["value"] in ("ana@mail.co", "Ana@Mail.co")
    same = client.get(f"/api/customers/{body['customer_id']}", headers=read).json()
    assert same["customer_id"] == body["customer_id"]
    assert same["identifiers"] == body["identifiers"]

    missing = client.get("/api/customers/lookup?email=nobody@mail.co", headers=read)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    two = client.get("/api/customers/lookup?email=a@b.co&phone=1", headers=read)
    assert (two.status_code, two.json()["error"]["code"]) == (400, "invalid")
    unknown = client.get("/api/customers/lookup?shoe_size=42", headers=read)
    assert unknown.status_code == 400
    assert "Unknown identifier kind 'shoe_size'" in unknown.json()["error"]["message"]
    bad = client.get("/api/customers/lookup?phone=12", headers=read)
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_identifier")
    assert client.get("/api/customers/cus_nope", headers=read).status_code == 404
    assert client.get("/api/customers/lookup?email=a@b.co").status_code == 401


def test_cli_profile_show(settings: Settings) -> None:
    with Runtime(settings) as rt:
        rt.init()
        _load(rt)
    runner = CliRunner()
    result = runner.invoke(app, ["profile", "show", "+6281234567890"])
    assert result.exit_code == 0, result.output
    assert 'first_name = "Ana Maria"  (instagram' in result.output
    assert "marketing/email: withdrawn" in result.output
    assert "email:ana@mail.co" in result.output
    result = runner.invoke(app, ["profile", "show", "ana@mail.co", "--json"])
    assert result.exit_code == 0, result.output
    assert '"source_priority"' not in result.output
    assert '"most_recent"' in result.output


def test_a_blocked_placeholder_is_refused_not_looked_up(rt: Runtime) -> None:
    _load(rt)
    with pytest.raises(InvalidInput, match="blocked placeholder"):
        _profile(rt, "test@example.com")

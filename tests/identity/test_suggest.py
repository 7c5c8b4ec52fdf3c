"""Duplicate suggestions: string similarity, the Fellegi-Sunter model, suggest/confirm/reject."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import Settings
from siyu.errors import Conflict, InvalidInput
from siyu.identity.fellegi_sunter import FellegiSunter
from siyu.identity.graph import resolve_workspace
from siyu.identity.similarity import (
    edits_many,
    jaro,
    jaro_winkler,
    within_edits,
)
from siyu.identity.suggest import (
    candidate_pairs,
    compute,
    decide,
    has_stored,
    match_scores,
    matching_fields,
    refresh,
    stored,
    suggest,
)
from siyu.runtime import Runtime
from tests.api.conftest import MakeKey, bearer
from tests.identity.helpers import customers_of_events, identify, ingest

FIRST = ["mei", "budi", "siti", "joko", "lena", "omar", "yuki", "ravi", "nina", "tom"]
LAST = ["tan", "wong", "putra", "sari", "koch", "haddad", "sato", "iyer", "berg", "reed"]
CITIES = [("10115", "Berlin"), ("80331", "Munich"), ("20095", "Hamburg"), ("50667", "Cologne")]


def test_string_similarity_matches_published_values() -> None:
    # Winkler's examples.
    assert jaro("MARTHA", "MARHTA") == pytest.approx(0.944, abs=1e-3)
    assert jaro_winkler("MARTHA", "MARHTA") == pytest.approx(0.961, abs=1e-3)
    assert jaro_winkler("DIXON", "DICKSONX") == pytest.approx(0.813, abs=1e-3)
    assert jaro_winkler("abc", "xyz") == 0.0
    assert within_edits("ana.lim@mail.co", "ana.lin@mail.co", 2) == 1
    assert within_edits("kitten", "sitting", 3) == 3
    assert within_edits("kitten", "sitting", 2) == 3  # more than k: k + 1


def test_column_wise_edit_distance_agrees_with_the_reference() -> None:
    # Typo'd and unrelated e-mail-like strings: DuckDB's column-wise distances capped at k + 1
    # equal the scalar banded reference; missing or empty sides give -1.
    rng = np.random.default_rng(5)
    alphabet = list("abcdeilmnorst.@")
    left: list[str | None] = []
    right: list[str | None] = []
    for _ in range(3000):
        word = "".join(rng.choice(alphabet, rng.integers(1, 14)))
        other = list(word)
        for _ in range(rng.integers(0, 4)):
            spot = int(rng.integers(0, len(other) + 1))
            cut = spot + int(rng.integers(0, 2))
            other[spot:cut] = list(rng.choice(alphabet, rng.integers(0, 2)))
        left.append(word)
        right.append("".join(other) if rng.random() < 0.8 else "".join(rng.choice(alphabet, 6)))
    left[:2], right[:2] = [None, ""], ["x", "y"]
    for k in (1, 2):
        got = edits_many(left, right, k)
        assert got[:2] == [-1, -1]
        want = [within_edits(a, b, k) if a and b else -1 for a, b in zip(left, right, strict=True)]
        assert got[2:] == want[2:]
    assert len(set(edits_many(left, right, 2))) == 5  # -1, 0, 1, 2 and 3 all occur


def test_fellegi_sunter_recovers_m_and_separates_matches() -> None:
    # Two comparisons with levels 0/1. 40 matches agree on both, 10 matches on one;
    # 950 non-matches mostly disagree. Deterministic patterns, no random numbers.
    match = np.array([[1, 1]] * 40 + [[1, 0]] * 5 + [[0, 1]] * 5, dtype=np.int8)
    other = np.array([[0, 0]] * 900 + [[1, 0]] * 30 + [[0, 1]] * 20, dtype=np.int8)
    gamma = np.concatenate([match, other])
    u = [np.array([0.97, 0.03]), np.array([0.98, 0.02])]
    model = FellegiSunter(["a", "b"], [2, 2]).fit(
        [(gamma, set())], u, candidates=len(gamma), total_pairs=len(gamma)
    )
    # Generated with m = 0.9; the maximum-likelihood m on this finite sample is 0.855, and the
    # weak Dirichlet prior pulls it a little further: within 0.07 of the truth.
    assert model.m_[0][1] == pytest.approx(0.9, abs=0.07)
    assert model.m_[1][1] == pytest.approx(0.9, abs=0.08)
    p = model.predict(gamma)
    assert p[:40].min() > 0.95
    assert p[50:950].max() < 0.01
    assert model.log2_bayes_factor(np.array([[-1, -1]], dtype=np.int8))[0] == 0.0


def _people(rt: Runtime) -> dict[str, Any]:
    """40 distinct people, Ana on two sources (typo'd email), and a namesake elsewhere."""
    shop = []
    for i in range(40):
        first, last = FIRST[i % 10], LAST[(i * 3 + i // 10) % 10]
        code, city = CITIES[i % 4]
        shop.append(
            identify(
                f"61000002{i:02d}",
                email=f"{first}.{last}{i}@mail.co",
                first_name=first.title(),
                last_name=last.title(),
                phone=f"+4915112345{i:03d}",
                address={"postal_code": code, "city": city, "country": "DE"},
                country="DE",
            )
        )
    ana = {"first_name": "Ana", "last_name": "Lim", "country": "DE"}
    berlin = {"postal_code": "10115", "city": "Berlin", "country": "DE"}
    shop.append(identify("6100000300", email="ana.lim@mail.co", address=berlin, **ana))
    shop.append(
        identify(
            "6100000301",
            email="ana.lim.munich@post.de",
            phone="+4915199999999",
            address={"postal_code": "80331", "city": "Munich", "country": "DE"},
            **ana,
        )
    )
    ingest(rt, "shopify", shop)
    ingest(rt, "instagram", [identify("17841400000000300", email="ana.lin@mail.co", day=2, **ana)])
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    with rt.db.engine.connect() as conn:
        ids = dict(
            conn.execute(
                sa.text(
                    "SELECT i.value, i.customer_id FROM identities i WHERE i.kind = 'email' "
                    "AND i.value IN ('ana.lim@mail.co', 'ana.lin@mail.co', "
                    "'ana.lim.munich@post.de')"
                )
            ).all()
        )
    return {"ws": ws, "ana": ids["ana.lim@mail.co"], "typo": ids["ana.lin@mail.co"],
            "namesake": ids["ana.lim.munich@post.de"]}  # fmt: skip


def _pairs(rt: Runtime, ws: str, **kw: Any) -> list[tuple[str, str, float]]:
    with rt.db.engine.connect() as conn:
        return [(s.customer_a, s.customer_b, s.probability) for s in suggest(conn, ws, **kw)]


def test_suggests_the_typo_not_the_namesake_and_remembers_decisions(rt: Runtime) -> None:
    c = _people(rt)
    ws, pair = c["ws"], tuple(sorted((c["ana"], c["typo"])))
    found = _pairs(rt, ws)
    assert [(a, b) for a, b, _ in found] == [pair]
    everything = {(a, b): p for a, b, p in _pairs(rt, ws, min_probability=0.0, limit=1000)}
    namesake = tuple(sorted((c["ana"], c["namesake"])))
    assert everything.get(namesake, 0.0) < 0.5  # same name, different address/email/phone

    with rt.db.engine.begin() as conn:
        decide(conn, ws, c["ana"], c["typo"], "reject", note="different people")
    assert _pairs(rt, ws) == []
    with rt.db.engine.begin() as conn, pytest.raises(Conflict, match="already rejected"):
        decide(conn, ws, c["ana"], c["typo"], "confirm")
    with rt.db.engine.begin() as conn, pytest.raises(InvalidInput, match="same"):
        decide(conn, ws, c["ana"], c["ana"], "confirm")


def test_stored_suggestions_are_the_computed_ones_less_what_changed_since(rt: Runtime) -> None:
    c = _people(rt)
    ws = c["ws"]
    with rt.db.engine.connect() as conn:
        assert stored(conn, ws) is None
        assert not has_stored(conn, ws)
        live = compute(conn, ws, min_probability=0.5, limit=None)
    with rt.db.engine.begin() as conn:
        assert refresh(conn, ws) == len(live) >= 1
    with rt.db.engine.connect() as conn:
        kept = stored(conn, ws, min_probability=0.5, limit=1000)
        top = stored(conn, ws, limit=1)
    assert kept is not None
    assert top is not None
    assert [dataclasses.replace(x, computed_at=None) for x in kept] == live
    assert all(x.computed_at is not None for x in kept)
    assert [(x.customer_a, x.customer_b) for x in top] == [tuple(sorted((c["ana"], c["typo"])))]
    # A reject since the refresh hides the pair at once; suggest() reads the stored rows.
    with rt.db.engine.begin() as conn:
        decide(conn, ws, c["ana"], c["typo"], "reject")
    assert _pairs(rt, ws) == []
    with rt.db.engine.begin() as conn:  # a refresh after a decision does not bring it back
        refresh(conn, ws)
    assert _pairs(rt, ws) == []


def _store_customer(conn: sa.Connection, account: str) -> str:
    """The customer holding a Shopify customer id."""
    query = "SELECT customer_id FROM identities WHERE kind = 'shopify_customer_id' AND value = :v"
    return str(conn.execute(sa.text(query), {"v": account}).scalar_one())


def test_a_family_phone_the_rules_refused_is_not_suggested(rt: Runtime) -> None:
    c = _people(rt)
    ws = c["ws"]
    # Grandfather, father and son: one name, one address, one phone, three store accounts. The
    # rules refuse the phone (one account per customer): it stays with the first, and the other
    # two share it with no customer holding it. The model alone rates them one person.
    home = {"postal_code": "50667", "city": "Cologne", "country": "DE"}
    budi = {"first_name": "Budi", "last_name": "Hartono", "country": "DE", "address": home}
    accounts = ("6100000400", "6100000401", "6100000402")
    ingest(
        rt,
        "shopify",
        [
            identify(a, email=f"budi.hartono.{a[-1]}@post.de", phone="+4915177777777", **budi)
            for a in accounts
        ],
    )
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
        conflicts = conn.execute(
            sa.text("SELECT count(*) FROM identity_conflicts WHERE value = '+4915177777777'")
        ).scalar()
        family = sorted(_store_customer(conn, a) for a in accounts)
    assert conflicts >= 2
    assert len(set(family)) == 3
    with rt.db.engine.connect() as conn:
        everything = compute(conn, ws, min_probability=0.0, limit=None)
    suggested = {(x.customer_a, x.customer_b) for x in everything}
    assert not suggested & {(family[0], family[1]), (family[0], family[2]), (family[1], family[2])}


def test_a_confirm_the_merge_rules_refuse_says_so(rt: Runtime) -> None:
    c = _people(rt)
    ws = c["ws"]
    # Two store accounts of one shop: at most one per customer, so the confirmed link is kept
    # as a conflict and the answer says the customers were not merged.
    with rt.db.engine.begin() as conn:
        store_a, store_b = (_store_customer(conn, v) for v in ("6100000200", "6100000201"))
        refused = decide(conn, ws, store_a, store_b, "confirm")
    assert refused["merged"] is False
    assert "not merged" in refused["reason"]
    assert "account" in refused["reason"]
    with rt.db.engine.begin() as conn:
        accepted = decide(conn, ws, c["typo"], c["ana"], "confirm")
    assert accepted["merged"] is True
    assert accepted["customer_id"] == c["ana"]


def test_stored_suggestions_leave_out_merged_customers(rt: Runtime) -> None:
    c = _people(rt)
    ws = c["ws"]
    with rt.db.engine.begin() as conn:
        refresh(conn, ws)
    assert len(_pairs(rt, ws)) == 1
    # The Instagram account later gives Ana's right address: One-ID merges the two customers,
    # and the stored pair goes without a refresh.
    ingest(rt, "instagram", [identify("17841400000000300", email="ana.lim@mail.co", day=9)])
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    assert _pairs(rt, ws) == []


def test_confirm_is_a_manual_link_kept_on_rebuild_and_undone_by_split(rt: Runtime) -> None:
    c = _people(rt)
    ws = c["ws"]
    before = customers_of_events(rt)
    with rt.db.engine.begin() as conn:
        result = decide(conn, ws, c["typo"], c["ana"], "confirm")
    assert result["customer_id"] == c["ana"]  # the older customer survives
    merged = customers_of_events(rt)
    assert len({merged[m] for m, x in before.items() if x in (c["ana"], c["typo"])}) == 1
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)  # a full rebuild keeps the operator's link
    assert customers_of_events(rt) == merged
    with rt.db.engine.connect() as conn:
        rule = conn.execute(
            sa.text("SELECT rule FROM identity_links WHERE rule = 'operator'")
        ).scalar()
    assert rule == "operator"
    assert _pairs(rt, ws) == []  # one customer now: nothing to suggest
    from siyu.identity.graph import split

    with rt.db.engine.begin() as conn:
        split(conn, ws, "email:ana.lin@mail.co", "wrong confirm")
    assert customers_of_events(rt) == before


def test_api_and_cli(client: TestClient, make_key: MakeKey, rt: Runtime) -> None:
    c = _people(rt)
    read, write = bearer(make_key("read")), bearer(make_key("write"))
    listed = client.get("/api/identity/suggestions", headers=read)
    assert listed.status_code == 200, listed.text
    top = listed.json()[0]
    assert {top["customer_a"], top["customer_b"]} == {c["ana"], c["typo"]}
    assert top["agreement"]["email"] == "same"
    assert top["probability"] >= 0.8
    assert top["computed_at"]  # the first read computed and stored them
    assert client.post("/api/identity/suggestions/refresh", headers=read).status_code == 403
    refreshed = client.post("/api/identity/suggestions/refresh", headers=write)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["suggestions"] >= 1
    again = client.get("/api/identity/suggestions", headers=read).json()[0]
    assert again["computed_at"] >= top["computed_at"]
    body = {"customer_a": c["ana"], "customer_b": c["typo"]}
    assert (
        client.post("/api/identity/suggestions/confirm", json=body, headers=read).status_code == 403
    )
    bad = client.get("/api/identity/suggestions?min_probability=2", headers=read)
    assert bad.status_code == 400
    explained = client.get(f"/api/identity/customers/{c['ana']}/explain", headers=read).json()
    assert {"kind": "email", "value": "ana.lim@mail.co"}.items() <= explained["identifiers"][
        0
    ].items() or any(r["value"] == "ana.lim@mail.co" for r in explained["identifiers"])
    done = client.post("/api/identity/suggestions/reject", json=body, headers=write)
    assert done.status_code == 200, done.text
    assert done.json()["decision"] == "reject"
    assert client.get("/api/identity/suggestions", headers=read).json() == []


def test_cli_suggest_confirm(settings: Settings) -> None:
    with Runtime(settings) as rt:
        rt.init()
        c = _people(rt)
    runner = CliRunner()
    result = runner.invoke(app, ["identity", "suggest"])
    assert result.exit_code == 0, result.output
    assert c["typo"] in result.output
    assert "agree: first_name, last_name, email" in result.output
    stored_only = runner.invoke(app, ["identity", "suggest", "--stored", "--json"])
    assert stored_only.exit_code == 0, stored_only.output
    assert c["typo"] in stored_only.output
    assert '"computed_at"' in stored_only.output
    result = runner.invoke(app, ["identity", "confirm", c["ana"], c["typo"], "--note", "same"])
    assert result.exit_code == 0, result.output
    assert f"now customer {c['ana']}" in result.output
    result = runner.invoke(app, ["identity", "suggest", "--json"])
    assert result.output.strip() == "[]"


def test_the_model_gives_the_same_probabilities_whatever_the_customers_order() -> None:
    """Customers are read in id order, and ids are hashes that include the workspace id: the
    same customers in another workspace come in another order and must score the same."""
    rng = np.random.default_rng(5)
    n = 400
    people = pd.DataFrame(
        {
            "first_name": rng.choice(FIRST, n),
            "last_name": rng.choice(LAST, n),
            "phone": [f"+49151{rng.integers(10**6, 10**7)}" for _ in range(n)],
            "country": "DE",
        }
    )
    place = rng.integers(0, len(CITIES), n)
    people["postal_code"] = [CITIES[i][0] for i in place]
    people["city"] = [CITIES[i][1] for i in place]
    people["email"] = people["first_name"] + "." + people["last_name"] + "@mail.co"
    people.loc[::7, "email"] = people["first_name"] + people["last_name"] + "@post.de"
    people["customer_id"] = [f"cus_{i:04d}" for i in range(n)]

    def scores(frame: pd.DataFrame) -> dict[frozenset[str], float]:
        df = matching_fields(frame.reset_index(drop=True))
        pairs = candidate_pairs(df)
        _, prob, _ = match_scores(df, pairs)
        ids = df["customer_id"].to_numpy()
        return {
            frozenset((ids[a], ids[b])): float(p)
            for a, b, p in zip(pairs["a"], pairs["b"], prob, strict=True)
        }

    first = scores(people)
    second = scores(people.iloc[rng.permutation(n)])
    assert len(first) > 100
    assert first.keys() == second.keys()
    keys = sorted(first, key=sorted)
    np.testing.assert_allclose(
        [first[k] for k in keys], [second[k] for k in keys], rtol=1e-9, atol=1e-12
    )

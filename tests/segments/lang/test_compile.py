"""Compilation to Ibis, run on DuckDB and PostgreSQL: the exact customers matched, at boundaries.

Windows are ``as_of - N < timestamp <= as_of``: an event exactly N days before as_of is out, one
second later is in, one at as_of is in and one after as_of never counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import ibis
import pytest

from siyu.compute import WorkspaceTables, tables
from siyu.errors import NotFound, SiyuError
from siyu.registry import Registry, registry
from siyu.runtime import Runtime
from siyu.segments.lang import (
    BUILTIN_FUNCTIONS,
    AggregateFunction,
    Compiler,
    compile_tag,
    compile_tags,
    customer_attributes,
    explain,
    inline_references,
    register,
)
from tests.segments.lang.test_parser import EXAMPLE

AS_OF = datetime(2025, 6, 30, 12, 0, 0)


def iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def identify(user: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "timestamp": "2025-01-01T00:00:00Z",
        "messageId": f"id-{user}",
        "traits": traits,
    }


class Events:
    """Builds track messages with unique ids."""

    def __init__(self) -> None:
        self.n = 0
        self.batch: list[dict[str, Any]] = []

    def add(self, user: str, event: str, at: datetime, times: int = 1, **props: Any) -> None:
        if event == POST:
            props.setdefault("community", "mums")
        if event == "Order Completed":
            props.setdefault("currency", "USD")
        for _ in range(times):
            self.n += 1
            self.batch.append(
                {
                    "type": "track",
                    "event": event,
                    "userId": user,
                    "timestamp": iso(at),
                    "messageId": f"ev-{self.n}",
                    "properties": props,
                }
            )


VIEW, POST = "Product Viewed", "Community Message Posted"
DAY = timedelta(days=1)


@pytest.fixture
def community(rt: Runtime) -> WorkspaceTables:
    e = Events()
    people = {
        "alice": ("ID", "1995-06-30"),  # 30 today
        "bob": ("TH", "1990-07-01"),  # 34 (35 tomorrow)
        "carol": ("MY", "1990-06-30"),  # 35 today: between is inclusive
        "dave": ("PH", "1989-06-30"),  # 36
        "erin": ("ID", "1995-01-01"),
        "frank": ("DE", "1995-01-01"),
        "gina": ("ID", "1995-01-01"),
        "hank": ("ID", "1995-01-01"),
    }
    batch = [identify(u, country=c, birthday=b) for u, (c, b) in people.items()]
    for user in ("alice", "dave", "frank"):
        e.add(user, VIEW, AS_OF - 5 * DAY, 6, category="baby")
        e.add(user, POST, AS_OF - 2 * DAY, 3)
    e.add("bob", VIEW, AS_OF - 5 * DAY, 5, category="baby")  # exactly 5 is not > 5
    e.add("bob", POST, AS_OF - 2 * DAY, 3)
    e.add("carol", VIEW, AS_OF - 30 * DAY, category="baby")  # day 30 exactly: out
    e.add("carol", VIEW, AS_OF - 30 * DAY + timedelta(seconds=1), category="baby")  # in
    e.add("carol", VIEW, AS_OF - 3 * DAY, 5, category="baby")
    e.add("carol", POST, AS_OF - DAY, 2)
    e.add("carol", POST, AS_OF)  # at as_of: in
    e.add("carol", POST, AS_OF + timedelta(seconds=1))  # after as_of: never
    e.add("gina", VIEW, AS_OF - 5 * DAY, 6, category="toys")
    e.add("gina", POST, AS_OF - 2 * DAY, 3)
    e.add("hank", VIEW, AS_OF - 5 * DAY, 6, category="baby")
    e.add("hank", POST, AS_OF - 2 * DAY, 2)
    e.add("hank", POST, AS_OF - 31 * DAY)
    rt.pipeline().ingest(batch + e.batch)
    return tables(rt.db, rt.workspace().workspace_id)


def user_ids(t: WorkspaceTables) -> dict[str, str]:
    df = t.execute(t.customers.select("customer_id", "user_id"))
    return dict(zip(df["customer_id"], df["user_id"], strict=True))


def matched(t: WorkspaceTables, text: str, as_of: datetime = AS_OF, **kw: Any) -> set[str]:
    customers = customer_attributes(t.customers, as_of)
    df = t.execute(compile_tag(text, customers=customers, events=t.events, as_of=as_of, **kw))
    names = user_ids(t)
    assert len(df) == len(set(df["customer_id"])), "one row per customer"
    return {names[c] for c, m in zip(df["customer_id"], df["matched"], strict=True) if m}


def test_the_issue_example(community: WorkspaceTables) -> None:
    assert matched(community, EXAMPLE) == {"alice", "carol"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f'count(event == "{VIEW}", last 30d) == 6',
            {"alice", "carol", "dave", "frank", "gina", "hank"},
        ),
        (f'count(event == "{VIEW}") == 7', {"carol"}),
        (
            f'count(event == "{POST}", last 30d) >= 3',
            {"alice", "bob", "carol", "dave", "frank", "gina"},
        ),
        (
            f'count(event == "{POST}", last 31d) == 3',
            {"alice", "bob", "carol", "dave", "frank", "gina"},
        ),
        (
            f'count(event == "{POST}", last 32d) == 3',
            {"alice", "bob", "carol", "dave", "frank", "gina", "hank"},
        ),
        (f'days_since(event == "{POST}") == 0', {"carol"}),
        (
            f'days_since(event == "{POST}", last 30d) == 2',
            {"alice", "bob", "dave", "frank", "gina", "hank"},
        ),
        (f'days_since_first(event == "{POST}") == 31', {"hank"}),
        ('count(type == "track") == 0 and count() == 1', {"erin"}),
        ('days_since(type == "track") is null and days_since() == 180', {"erin"}),
        ("age between 30 and 35", {"alice", "bob", "carol", "erin", "frank", "gina", "hank"}),
        ("age between 35 and 36", {"carol", "dave"}),
        ("age not between 31 and 36", {"alice", "erin", "frank", "gina", "hank"}),
        ('country not in ("ID", "TH", "MY", "PH")', {"frank"}),
        ('country == "ID" and not (age > 30)', {"alice", "erin", "gina", "hank"}),
        ('birthday >= "1990-06-30" and birthday < "1995-01-01"', {"bob", "carol"}),
        (
            'first_seen_at <= "2025-01-01T00:00:00"',
            {"alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank"},
        ),
        ('first_seen_at < "2025-01-01T07:00:00+07:00"', set()),  # 00:00 UTC: not before
        ('first_seen_at <= "2025-01-01T07:00:00+07:00" and country == "DE"', {"frank"}),
        ("traits.country == 'DE'", {"frank"}),
        ("language is null and country is not null and count() > 10", {"carol"}),
    ],
)
def test_windows_and_attributes(community: WorkspaceTables, text: str, expected: set[str]) -> None:
    assert matched(community, text) == expected


def test_as_of_moves_the_window(community: WorkspaceTables) -> None:
    later = AS_OF + timedelta(days=3)
    others = {"alice", "bob", "dave", "frank", "gina"}
    assert matched(community, f'count(event == "{POST}", last 1d) >= 1', later) == set()
    assert matched(community, f'count(event == "{POST}", last 6d) == 3', later) == others
    # as_of - 5d is exactly when the others posted: out; carol's post after AS_OF now counts.
    assert matched(community, f'count(event == "{POST}", last 5d) > 0', later) == {"carol"}
    assert matched(community, f'count(event == "{POST}", last 5d) == 4', later) == {"carol"}


@pytest.fixture
def shop(rt: Runtime) -> WorkspaceTables:
    e = Events()
    batch = [identify("p1"), identify("p2"), identify("p3", vip=True), identify("p4", vip=False)]
    e.add("p1", "Order Completed", AS_OF - 10 * DAY, order_id="a", total=60, coupon="SAVE10")
    e.add("p1", "Order Completed", AS_OF - 100 * DAY, order_id="b", total=50)
    e.add("p2", "Order Completed", AS_OF - 90 * DAY, order_id="c", total=100)  # 90d: out
    e.add("p2", "Order Completed", AS_OF - DAY, order_id="d", total=20)
    e.add("p3", "Note", AS_OF - DAY, note=None, flag=True)
    e.add("p4", "Note", AS_OF - DAY, note="hello", tags=["a"])
    rt.pipeline().ingest(batch + e.batch)
    return tables(rt.db, rt.workspace().workspace_id)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('sum(properties.total, event == "Order Completed", last 90d) >= 60', {"p1"}),
        ('sum(properties.total, event == "Order Completed", last 91d) == 120', {"p2"}),
        ("sum(properties.total) == 110", {"p1"}),
        ("sum(properties.total) == 0", {"p3", "p4"}),
        ('count(event == "Order Completed", last 3m) == 2', {"p2"}),
        ('count(event == "Order Completed", last 1y) == 2', {"p1", "p2"}),
        ('count(event == "Order Completed", last 14w) == 2', {"p2"}),
        ("avg(properties.total) == 55", {"p1"}),
        ("max(properties.total) > 90 and min(properties.total) < 30", {"p2"}),
        ("avg(properties.total) is null", {"p3", "p4"}),
        ("days_since(properties.total > 55.5) == 10", {"p1"}),
        ('count(properties.coupon == "SAVE10") >= 1', {"p1"}),
        ("count(properties.flag == true) == 1 and count(properties.flag) == 1", {"p3"}),
        (
            'count(properties.total in (20, 60) and properties.order_id in ("a", "d")) == 1',
            {"p1", "p2"},
        ),
        ("count(properties.total between 20 and 50) == 1", {"p1", "p2"}),
        ('count(event == "Note" and properties.note is null) == 1', {"p3"}),
        ('count(event == "Note" and properties.note is not null) == 1', {"p4"}),
        ('count(properties.note == "hello") == 1 and count(properties.note != "x") == 1', {"p4"}),
        # A property is compared as the literal's type: a string is not a number -> unknown.
        ("count(properties.note != 3) > 0", set()),
        ("traits.vip", {"p3"}),
        ("traits.vip == false", {"p4"}),
        ("not traits.vip", {"p4"}),
        ("traits.vip is null", {"p1", "p2"}),
    ],
)
def test_event_functions_and_json(shop: WorkspaceTables, text: str, expected: set[str]) -> None:
    assert matched(shop, text) == expected


class Resolver:
    """Tags as Ibis tables on the same backend, as the segments engine will provide them."""

    kinds: Collection[str] = ("tag",)

    def __init__(self, t: WorkspaceTables) -> None:
        self.t = t

    def exists(self, kind: str, name: str) -> bool:
        return name in ("indonesia", "poster")

    def members(self, kind: str, name: str) -> Any:
        if name == "indonesia":
            c = self.t.customers
            return c.filter(c.country == "ID").select("customer_id")
        return compile_tag(
            f'count(event == "{POST}", last 30d) >= 3',
            customers=customer_attributes(self.t.customers, AS_OF),
            events=self.t.events,
            as_of=AS_OF,
        )


def test_references(community: WorkspaceTables) -> None:
    resolver = Resolver(community)
    assert matched(community, "tag:indonesia and not tag:poster", resolver=resolver) == {
        "erin",
        "hank",
    }
    assert matched(community, "tag:poster and age >= 35", resolver=resolver) == {"carol", "dave"}


def test_many_tags_share_one_scan(community: WorkspaceTables) -> None:
    t = community
    customers = customer_attributes(t.customers, AS_OF)
    definitions = {
        "viewer": f'count(event == "{VIEW}", last 30d) > 5',
        "young_viewer": f'age < 31 and count(event == "{VIEW}",   last 30d) > 5',
        "poster": f'count(event == "{POST}", last 30d) >= 3',
    }
    compiler = Compiler(customers=customers, events=t.events, as_of=AS_OF)
    for text in definitions.values():
        compiler.add(text)
    assert len(compiler.aggregates) == 2  # the same aggregate written twice is one column
    df = t.execute(compile_tags(definitions, customers=customers, events=t.events, as_of=AS_OF))
    names = user_ids(t)
    got = {tag: {names[c] for c in df.loc[df[tag], "customer_id"]} for tag in definitions}
    assert got == {
        "viewer": {"alice", "carol", "dave", "frank", "gina", "hank"},
        "young_viewer": {"alice", "frank", "gina", "hank"},
        "poster": {"alice", "bob", "carol", "dave", "frank", "gina"},
    }


def test_explain_unknown_customer(community: WorkspaceTables) -> None:
    t = community
    customers = customer_attributes(t.customers, AS_OF)
    with pytest.raises(NotFound, match="cus_nobody"):
        explain("age > 1", "cus_nobody", customers=customers, events=t.events, as_of=AS_OF)


def test_explain(community: WorkspaceTables) -> None:
    t = community
    ids = {v: k for k, v in user_ids(t).items()}
    kw: dict[str, Any] = {
        "customers": customer_attributes(t.customers, AS_OF),
        "events": t.events,
        "as_of": AS_OF,
    }
    why = explain(EXAMPLE, ids["bob"], **kw)
    assert why.matched is False
    steps = {s.text: s for s in _flatten(why.root)}
    views = f'count(event == "{VIEW}" and properties.category == "baby", last 30d)'
    assert steps[views].value == 5
    assert steps[f"{views} > 5"].held is False
    assert steps['country in ("ID", "TH", "MY", "PH")'].held is True
    assert steps["age"].value == 34
    assert any(line.strip() == f"[no] {views} > 5" for line in why.lines())
    assert why.to_dict()["explanation"]["held"] is False

    assert [c.text for c in why.root.children] == [
        'country in ("ID", "TH", "MY", "PH")',
        "age between 25 and 35",
        f"{views} > 5",
        f'count(event == "{POST}", last 30d) >= 3',
    ]
    assert [c.text for c in steps["age between 25 and 35"].children] == ["age"]

    unknown = explain("traits.vip or country is null", ids["bob"], **kw)
    assert unknown.root.held is None
    assert unknown.matched is False
    assert unknown.lines()[1].strip().startswith("[unknown]")
    assert explain("true", ids["bob"], **kw).matched is True

    yes = explain(EXAMPLE, ids["carol"], **kw)
    assert yes.matched is True
    assert yes.lines()[0].endswith("has the tag (as of 2025-06-30T12:00:00)")


def _flatten(step: Any) -> list[Any]:
    return [step, *(s for c in step.children for s in _flatten(c))]


def _distinct_days(hit: Any, value: Any, ts: Any, as_of: datetime) -> Any:
    return hit.ifelse(ts.date(), ibis.null("date")).nunique()


def test_a_registered_function_is_part_of_the_language(
    community: WorkspaceTables, monkeypatch: pytest.MonkeyPatch
) -> None:
    function = AggregateFunction("distinct_days", "Days with a matching event.", _distinct_days)
    monkeypatch.setitem(registry.tag_functions._items, "distinct_days", function)
    text = f'distinct_days(event == "{POST}", last 30d) == 2'
    assert matched(community, text) == {"carol"}


def test_builtins_register_through_the_extension_point() -> None:
    fresh = Registry()
    register(fresh)
    assert set(fresh.tag_functions._items) == set(BUILTIN_FUNCTIONS)


def test_a_schema_column_missing_from_the_customers_table_is_a_clear_error(
    community: WorkspaceTables,
) -> None:
    t = community
    with pytest.raises(SiyuError, match="'age', which is in the schema but not a column"):
        compile_tag("age > 3", customers=t.customers, events=t.events, as_of=AS_OF)


def test_a_catalogue_of_tags_on_tags_is_one_query(community: WorkspaceTables) -> None:
    t = community
    definitions = {
        "viewer": f'count(event == "{VIEW}", last 30d) > 5',
        "poster": f'count(event == "{POST}", last 30d) >= 3',
        "engaged": "tag:viewer and tag:poster",
        "engaged_sea": 'tag:engaged and country in ("ID", "TH", "MY", "PH")',
    }
    trees = inline_references(definitions)
    customers = customer_attributes(t.customers, AS_OF)
    compiler = Compiler(customers=customers, events=t.events, as_of=AS_OF)
    for tree in trees.values():
        compiler.add(tree)
    assert len(compiler.aggregates) == 2
    assert not compiler.references
    df = t.execute(compile_tags(trees, customers=customers, events=t.events, as_of=AS_OF))
    names = user_ids(t)
    got = {tag: {names[c] for c in df.loc[df[tag], "customer_id"]} for tag in definitions}
    assert got["engaged"] == {"alice", "carol", "dave", "frank", "gina"}
    assert got["engaged_sea"] == {"alice", "carol", "dave", "gina"}


#: Counts over several windows (and none), compiled together: the events are cut into time
#: slices at the windows' starts, so each boundary event (day 30 exactly, 31 days, at as_of,
#: after as_of) must land in exactly one slice and count for exactly the right windows.
SLICED = {
    "views_30": (
        f'count(event == "{VIEW}", last 30d) == 6',
        {"alice", "carol", "dave", "frank", "gina", "hank"},
    ),
    "views_all": (f'count(event == "{VIEW}") == 7', {"carol"}),
    "posts_3d": (
        f'count(event == "{POST}", last 3d) == 3',
        {"alice", "bob", "carol", "dave", "frank", "gina"},
    ),
    "posts_30": (
        f'count(event == "{POST}", last 30d) >= 3',
        {"alice", "bob", "carol", "dave", "frank", "gina"},
    ),
    "posts_31": (
        f'count(event == "{POST}", last 31d) == 3',
        {"alice", "bob", "carol", "dave", "frank", "gina"},
    ),
    "posts_32": (
        f'count(event == "{POST}", last 32d) == 3',
        {"alice", "bob", "carol", "dave", "frank", "gina", "hank"},
    ),
    "posts_1w": (f'count(event == "{POST}", last 1w) == 2', {"hank"}),
    "baby_4d": (
        f'count(event == "{VIEW}" and properties.category == "baby", last 4d) == 5',
        {"carol"},
    ),
    "baby_6d": (
        f'count(event == "{VIEW}" and properties.category == "baby", last 6d) >= 6',
        {"alice", "dave", "frank", "hank"},
    ),
    "recent_post": (
        f'days_since(event == "{POST}", last 30d) == 2',
        {"alice", "bob", "dave", "frank", "gina", "hank"},
    ),
    "any_event": ("count() == 1", {"erin"}),
}


def test_counts_over_many_windows_in_one_query(community: WorkspaceTables) -> None:
    t = community
    customers = customer_attributes(t.customers, AS_OF)
    definitions = {name: text for name, (text, _) in SLICED.items()}
    df = t.execute(compile_tags(definitions, customers=customers, events=t.events, as_of=AS_OF))
    names = user_ids(t)
    got = {tag: {names[c] for c in df.loc[df[tag], "customer_id"]} for tag in definitions}
    assert got == {name: expected for name, (_, expected) in SLICED.items()}
    for name, (text, expected) in SLICED.items():  # the same, each compiled alone
        assert matched(t, text) == expected, name


def test_slices_cut_at_window_starts() -> None:
    from siyu.segments.lang.compiler import MAX_SLICES, _slices

    week, month, year = AS_OF - 7 * DAY, AS_OF - 30 * DAY, AS_OF - 365 * DAY
    assert _slices([(week, "a")], AS_OF) == [(week, None)]
    two = _slices([(week, "a"), (month, "b"), (year, "c")], AS_OF)
    assert len(two) <= MAX_SLICES
    assert two[0][1] is None  # from as_of
    assert two[-1][0] == year  # back to the oldest start
    assert all(low == high for (low, _), (_, high) in itertools.pairwise(two))
    open_ended = _slices([(week, "a"), (None, "b")], AS_OF)
    assert open_ended[-1][0] is None  # a count without a window reads all older events

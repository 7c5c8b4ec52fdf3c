"""Compile checked tag expressions to Ibis: one definition, every engine.

Set-based: all aggregates of all tags being compiled together are distinct columns of a few
``group_by(customer_id)`` over the events, each a conditional reduction such as
``(condition & in_window).ifelse(1, 0).sum()``. Counts are split by time slices cut at the
windows' starts (each event is read by one slice, which counts only the conditions asked about
its time: a 7-day count does not look at two years of events), other functions share one more
group-by over the events they need. The per-customer result is left-joined to the customers
table once (no events means count 0, sum 0, days_since null), references are left-joined the
same way, and each tag becomes one boolean column. No SQL is ever built from user text:
literals become Ibis literals.

Windows: ``last 30d`` holds events with ``as_of - 30 days < timestamp <= as_of``; ``w`` is 7
days, ``m`` and ``y`` are calendar months and years (the day clamped to the month's end). Events
after ``as_of`` never count, so history can be recomputed for any date.

Missing values follow SQL: a comparison with a missing attribute is unknown, and a customer
matches a tag only when the whole expression is true.
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ibis

from siyu.errors import SiyuError
from siyu.segments.lang.checker import Checker, Context, parse_temporal
from siyu.segments.lang.functions import count_reducer, lookup
from siyu.segments.lang.nodes import (
    Between,
    BoolOp,
    Call,
    Compare,
    Expr,
    InList,
    IsNull,
    Literal,
    Not,
    Path,
    Reference,
    Window,
    children,
    walk,
)
from siyu.segments.lang.parser import parse
from siyu.segments.lang.printer import to_text
from siyu.segments.lang.schema import AttrType, Resolver, ValueType

_CID = "_tag_cid"


def naive_utc(moment: datetime) -> datetime:
    """``moment`` as the naive UTC timestamp the store uses."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def months_before(moment: datetime, months: int) -> datetime:
    """The same time ``months`` calendar months earlier (day clamped to the month's end)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def window_start(window: Window, as_of: datetime) -> datetime:
    """The exclusive lower bound of ``window`` ending at ``as_of``."""
    if window.unit == "d":
        return as_of - timedelta(days=window.amount)
    if window.unit == "w":
        return as_of - timedelta(weeks=window.amount)
    months = window.amount * (12 if window.unit == "y" else 1)
    return months_before(as_of, months)


def with_age(customers: Any, as_of: datetime) -> Any:
    """``customers`` plus ``age``: whole years from ``birthday`` to ``as_of`` (null if unknown)."""
    born = customers.birthday
    born_md = born.month() * 100 + born.day()
    before_birthday = (born_md > as_of.month * 100 + as_of.day).ifelse(1, 0)
    return customers.mutate(age=(as_of.year - born.year() - before_birthday).cast("int64"))


def customer_attributes(customers: Any, as_of: datetime) -> Any:
    """Customers known by ``as_of`` with the derived ``age``: the default tag input."""
    as_of = naive_utc(as_of)
    known = customers.filter(customers.first_seen_at <= ibis.literal(as_of))
    return with_age(known, as_of)


class Compiler:
    """Compiles several tag expressions against one customers table, events table and as_of."""

    def __init__(
        self,
        *,
        customers: Any,
        events: Any,
        as_of: datetime,
        schema: Mapping[str, AttrType] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.customers = customers
        self.events = events
        self._native_count_if = _backend_name(events) == "duckdb"
        self.as_of = naive_utc(as_of)
        self.schema = schema
        self.resolver = resolver
        self.checker = Checker("", schema, resolver)
        self.aggregates: dict[Call, str] = {}
        self.references: dict[Reference, str] = {}
        self._event_reads: dict[tuple[tuple[str, ...], ValueType | None], str] | None = None

    def add(self, expression: str | Expr) -> Expr:
        """Parse (if text) and type-check one expression; register its aggregates."""
        source = expression if isinstance(expression, str) else to_text(expression)
        tree = parse(source)
        Checker(source, self.schema, self.resolver).check(tree)
        for path in _customer_paths(tree):
            if path.dotted in self.checker.schema:
                self._require_column(path.dotted)
        for node in walk(tree):
            if isinstance(node, Call) and node not in self.aggregates:
                self.aggregates[node] = f"_agg{len(self.aggregates)}"
            elif isinstance(node, Reference) and node not in self.references:
                self.references[node] = f"_ref{len(self.references)}"
        return tree

    def _require_column(self, name: str) -> None:
        if name not in self.customers.columns:
            raise SiyuError(
                f"The tag uses '{name}', which is in the schema but not a column of the "
                "customers table given to the compiler.",
                hint="Pass customer_attributes(t.customers, as_of) (it adds 'age'), or add the "
                "column to the customers table.",
            )

    # -- the per-customer table ------------------------------------------------------------------

    def joined(self) -> Any:
        """Customers left-joined with every aggregate and reference column registered so far."""
        table = self.customers
        if self.aggregates:
            table = self._join(table, self.aggregate_table(), self._empties())
        for ref, column in self.references.items():
            assert self.resolver is not None  # the checker rejects references without one
            members = self.resolver.members(ref.kind, ref.name)
            if "matched" in members.columns:
                members = members.filter(members.matched)
            members = members.select(**{_CID: members.customer_id}).distinct()
            table = self._join(
                table, members.mutate(**{column: ibis.literal(True)}), {column: False}
            )
        return table

    def _empties(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for call, column in self.aggregates.items():
            function = lookup(call.name)
            assert function is not None
            out[column] = function.empty
        return out

    def _join(self, left: Any, right: Any, fills: Mapping[str, Any]) -> Any:
        joined = left.left_join(right, left.customer_id == right[_CID])
        columns = {name: joined[name] for name in left.columns}
        for name, empty in fills.items():
            columns[name] = joined[name] if empty is None else joined[name].fill_null(empty)
        return joined.select(**columns)

    def aggregate_table(self) -> Any:
        """One row per customer with events: ``_tag_cid`` and a column per distinct aggregate.

        The per-slice tables (see :meth:`_aggregate_parts`) are outer-joined with each other
        first, narrow as they are, so that the wide customers table is joined once.
        """
        parts, sums, singles = self._aggregate_parts()
        table = parts[0]
        for part in parts[1:]:
            both = table.outer_join(part, _CID)
            key = ibis.coalesce(both[_CID], both[f"{_CID}_right"])
            table = both.select(
                key.name(_CID),
                *[c for c in table.columns if c != _CID],
                *[c for c in part.columns if c != _CID],
            ).view()  # a table of its own, not a link of the join chain
        columns = {column: _sum_of(table, partials) for column, partials in sums.items()}
        columns |= {column: table[column] for column in singles}
        return table.select(table[_CID], **{c: columns[c] for c in self.aggregates.values()})

    def _kept_events(self) -> Any:
        e = self.events
        return e.filter(e.customer_id.notnull() & (e.timestamp <= ibis.literal(self.as_of)))

    def _aggregate_parts(self) -> tuple[list[Any], dict[str, list[str]], list[str]]:
        """Per-customer tables of aggregates over the events, and how to combine their columns.

        Counts are computed per **time slice**: the window starts of all counts cut the events
        into slices, each slice is one ``group_by(customer_id)`` over only its own events with
        one column per distinct condition, and a count over ``last N`` is the sum of the
        slices inside its window. Every event is read by one slice, so an event costs as many
        conditions as are asked about its slice (the many 7-day counts do not look at two
        years of history), instead of every condition of every tag. Other functions (sums,
        averages, days since...) are reduced in one more group-by over the events they need.

        Returns the tables (keyed by ``_tag_cid``), for each count column the partial columns
        that add up to it, and the columns of the other functions.
        """
        counts = [c for c in self.aggregates if _sliceable(c)]
        others = [c for c in self.aggregates if not _sliceable(c)]
        parts: list[Any] = []
        sums: dict[str, list[str]] = {}
        if counts:
            slices = _slices(
                [
                    (window_start(c.window, self.as_of) if c.window else None, c.args)
                    for c in counts
                ],
                self.as_of,
            )
            for index, (low, high) in enumerate(slices):
                partials: dict[tuple[tuple[Expr, ...], datetime | None], str] = {}
                for call in counts:
                    start = window_start(call.window, self.as_of) if call.window else None
                    if high is not None and start is not None and high <= start:
                        continue  # the slice is older than the window
                    within = None if start is None or (low is not None and low >= start) else start
                    name = partials.setdefault((call.args, within), f"_s{index}_{len(partials)}")
                    sums.setdefault(self.aggregates[call], []).append(name)
                parts.append(self._slice_table(low, high, partials))
        if others:
            parts.append(self._general_table(others))
        return parts, sums, [self.aggregates[c] for c in others]

    def _slice_table(
        self,
        low: datetime | None,
        high: datetime | None,
        partials: Mapping[tuple[tuple[Expr, ...], datetime | None], str],
    ) -> Any:
        """Counts of each (condition, start) in ``partials`` over events in ``(low, high]``."""
        e = self._kept_events()
        if low is not None:
            e = e.filter(e.timestamp > ibis.literal(low))
        if high is not None:
            e = e.filter(e.timestamp <= ibis.literal(high))

        def hits(t: Any) -> dict[str, Any]:
            out = {}
            for (args, start), name in partials.items():
                hit = self.condition(args[0], "event", t) if args else t.timestamp.notnull()
                if start is not None:
                    hit = hit & (t.timestamp > ibis.literal(start))
                out[name] = hit
            return out

        conditions = [args[0] for args, _ in partials if args]
        projected = self._with_event_reads(e, hits, self._read_guards(conditions))
        columns = {name: self._count(hit) for name, hit in hits(projected).items()}
        self._event_reads = None
        return projected.group_by(**{_CID: projected.customer_id}).aggregate(**columns)

    def _read_guards(self, conditions: list[Expr]) -> dict[tuple[str, ...], list[list[Expr]]]:
        """For each JSON path the counted ``conditions`` read: the guards of those conditions.

        A condition's guard is its top-level ``and`` terms that read no JSON (``event ==
        "Product Viewed"`` in ``event == "Product Viewed" and properties.category ==
        "baby"``). Where no guard of the conditions reading a path holds, none of them can be
        true, so the path need not be read: parsing JSON is the dearest part of a count (at 1M
        customers, about a third of the last 30 days' counts), and most events have no use
        for it. A path read by a condition without a guard is read on every event (absent).
        """
        guards: dict[tuple[str, ...], list[list[Expr]]] = {}
        unguarded: set[tuple[str, ...]] = set()
        for condition in conditions:
            terms = _and_terms(condition)
            plain = [term for term in terms if not self._json_paths(term)]
            for parts in self._json_paths(condition):
                if plain:
                    guards.setdefault(parts, []).append(plain)
                else:
                    unguarded.add(parts)
        return {parts: g for parts, g in guards.items() if parts not in unguarded}

    def _json_paths(self, node: Expr) -> set[tuple[str, ...]]:
        """The JSON paths of the events that ``node`` reads."""
        return {
            n.parts
            for n in walk(node)
            if isinstance(n, Path) and self.checker.path_type(n, "event") == "json"
        }

    def _general_table(self, calls: list[Call]) -> Any:
        """Every aggregate in ``calls`` in one group_by over the events they need."""
        e = self._kept_events()
        starts = [window_start(c.window, self.as_of) for c in calls if c.window]
        if len(starts) == len(calls):
            e = e.filter(e.timestamp > ibis.literal(min(starts)))
        projected = self._with_event_reads(
            e, lambda t: {self.aggregates[c]: self._reduce(c, t) for c in calls}
        )
        columns = {self.aggregates[call]: self._reduce(call, projected) for call in calls}
        self._event_reads = None
        return projected.group_by(**{_CID: projected.customer_id}).aggregate(**columns)

    def _with_event_reads(
        self,
        e: Any,
        build: Any,
        guards: Mapping[tuple[str, ...], list[list[Expr]]] | None = None,
    ) -> Any:
        """``e`` with one column per distinct JSON read that ``build(e)`` makes.

        Each property is then extracted once per event, not once per condition (5x faster on
        DuckDB with a few dozen aggregates). ``build`` runs once to record the reads; the
        caller builds its columns again over the returned table, which reads them. A path in
        ``guards`` (see :meth:`_read_guards`) is read only on events where one of its guards
        holds, and is null elsewhere.
        """
        self._event_reads = {}
        build(e)
        reads = {}
        for (parts, want), name in self._event_reads.items():
            read = _unwrap(e, parts, want)
            if guards and parts in guards:
                gate = self._any_guard(guards[parts], e)
                read = gate.ifelse(read, ibis.null(read.type()))
            reads[name] = read
        return e.mutate(**reads) if reads else e

    def _any_guard(self, guards: list[list[Expr]], e: Any) -> Any:
        """True where all terms of one of ``guards`` hold (each distinct guard tested once)."""
        tests = []
        for terms in dict.fromkeys(tuple(g) for g in guards):
            test = self.condition(terms[0], "event", e)
            for term in terms[1:]:
                test = test & self.condition(term, "event", e)
            tests.append(test)
        gate = tests[0]
        for test in tests[1:]:
            gate = gate | test
        return gate

    def _count(self, hit: Any) -> Any:
        if self._native_count_if:
            # DuckDB's count_if skips unknown conditions itself and takes about half the CPU
            # of SUM(CASE WHEN COALESCE(...) THEN 1 ELSE 0 END) over tens of millions of events.
            return _count_if(hit)
        return count_reducer(hit.fill_null(False), None, None, self.as_of)

    def _reduce(self, call: Call, e: Any) -> Any:
        function = lookup(call.name)
        assert function is not None
        args = list(call.args)
        value = self.value(args.pop(0), "event", e, "number") if function.takes_value else None
        hit = self.condition(args[0], "event", e) if args else e.timestamp.notnull()
        if call.window is not None:
            hit = hit & (e.timestamp > ibis.literal(window_start(call.window, self.as_of)))
        if function.reduce is count_reducer:
            return self._count(hit)
        return function.reduce(hit.fill_null(False), value, e.timestamp, self.as_of)

    # -- expressions -----------------------------------------------------------------------------

    def value(self, node: Expr, ctx: Context, t: Any, want: ValueType | None = None) -> Any:
        """The Ibis value of ``node`` over table ``t``; ``want`` types JSON and date literals."""
        if isinstance(node, Literal):
            return self.literal(node, want)
        if isinstance(node, Path):
            return self.path(node, ctx, t, want)
        if isinstance(node, Call):
            return t[self.aggregates[node]]
        if isinstance(node, Reference):
            return t[self.references[node]]
        return self.condition(node, ctx, t)

    def literal(self, node: Literal, want: ValueType | None) -> Any:
        value = node.value
        if node.kind == "string" and want in ("date", "timestamp"):
            moment = parse_temporal(str(value), want)
            assert moment is not None  # the checker rejects unparsable dates
            if isinstance(moment, datetime):
                return ibis.literal(naive_utc(moment))
            return ibis.literal(moment, type="date")
        if isinstance(value, Decimal):
            return ibis.literal(float(value))
        if node.kind == "number":
            return ibis.literal(value, type="int64")
        return ibis.literal(value)

    def path(self, node: Path, ctx: Context, t: Any, want: ValueType | None) -> Any:
        kind = self.checker.path_type(node, ctx)
        if kind != "json":
            return t[node.dotted]
        if ctx == "event" and self._event_reads is not None:
            name = self._event_reads.setdefault((node.parts, want), f"_p{len(self._event_reads)}")
            if name in t.columns:
                return t[name]
        return _unwrap(t, node.parts, want)

    def condition(self, node: Expr, ctx: Context, t: Any) -> Any:
        """The boolean Ibis expression of a checked condition."""
        if isinstance(node, BoolOp):
            left, right = self.condition(node.left, ctx, t), self.condition(node.right, ctx, t)
            return left & right if node.op == "and" else left | right
        if isinstance(node, Not):
            return ~self.condition(node.operand, ctx, t)
        if isinstance(node, Compare):
            lt = self.checker.type_of(node.left, ctx)
            rt = self.checker.type_of(node.right, ctx)
            left = self.value(node.left, ctx, t, rt)
            right = self.value(node.right, ctx, t, lt)
            return _COMPARE[node.op](left, right)
        if isinstance(node, InList):
            return self.in_list(node, ctx, t)
        if isinstance(node, Between):
            want = self.checker.type_of(node.low, ctx)
            operand = self.value(node.operand, ctx, t, want)
            low = self.value(node.low, ctx, t, self.checker.type_of(node.operand, ctx))
            high = self.value(node.high, ctx, t, self.checker.type_of(node.operand, ctx))
            inside = (operand >= low) & (operand <= high)
            return ~inside if node.negated else inside
        if isinstance(node, IsNull):
            missing = self.is_null(node.operand, ctx, t)
            return ~missing if node.negated else missing
        return self.value(node, ctx, t, "boolean")

    def in_list(self, node: InList, ctx: Context, t: Any) -> Any:
        operand_type = self.checker.type_of(node.operand, ctx)
        by_kind: dict[str, list[Literal]] = {}
        for item in node.items:
            by_kind.setdefault(item.kind, []).append(item)
        tests = []
        for kind, items in by_kind.items():
            want: ValueType = kind if operand_type == "json" else operand_type  # type: ignore[assignment]
            operand = self.value(node.operand, ctx, t, want)
            tests.append(operand.isin([self.literal(i, want) for i in items]))
        found = tests[0]
        for test in tests[1:]:
            found = found | test
        return ~found if node.negated else found

    def is_null(self, node: Expr, ctx: Context, t: Any) -> Any:
        if isinstance(node, Path) and self.checker.path_type(node, ctx) == "json":
            raw = self.path(node, ctx, t, "json")
            # A JSON null is SQL NULL on DuckDB but the value 'null' in PostgreSQL jsonb.
            return raw.isnull() | (raw.cast("string") == "null").fill_null(False)
        return self.value(node, ctx, t).isnull()


#: At most this many time slices (each one group-by over its own events, joined to the
#: customers: more slices read fewer conditions per event but hold more join tables).
MAX_SLICES = 3


def _sliceable(call: Call) -> bool:
    """Counts add up over disjoint slices of events; other reducers are kept whole."""
    function = lookup(call.name)
    return function is not None and function.reduce is count_reducer


def _slices(
    windows: list[tuple[datetime | None, object]], as_of: datetime
) -> list[tuple[datetime | None, datetime | None]]:
    """Disjoint ``(low, high]`` time slices (None: unbounded) covering every window, newest first.

    ``windows`` holds each count's (window start or None, condition). The cuts are window
    starts, chosen (at most :data:`MAX_SLICES` slices) to minimise the estimated work: events
    spread evenly in time, each costing a fixed amount plus one per condition its slice
    counts. A window starting inside a slice is counted there with its start as an extra
    condition; a count without a window needs an open last slice.
    """
    starts = sorted({s for s, _ in windows if s is not None}, reverse=True)
    open_ended = any(s is None for s, _ in windows)
    oldest = starts[-1] if starts else as_of
    # Events before the oldest window: assume as many as in a year, or in that window.
    history = max(as_of - oldest, timedelta(days=365))

    def cost(cuts: tuple[datetime, ...]) -> float:
        bounds: list[datetime | None] = [*cuts, None] if open_ended else list(cuts)
        total, high = 0.0, as_of
        for low in bounds:
            span = (high - low) if low is not None else history
            asked = {
                (w, cond if w is None or low is None or w >= low else (w, cond))
                for w, cond in windows
                if w is None or w < high
            }
            total += span.total_seconds() * (_SLICE_OVERHEAD + len(asked))
            high = low if low is not None else high
        return total + _JOIN_COST * len(bounds) * history.total_seconds()

    # Without an open slice the oldest start must be a cut (it bounds the last slice).
    fixed = () if open_ended else tuple(starts[-1:])
    free = starts if open_ended else starts[:-1]
    room = max(MAX_SLICES - 1, 0)
    candidates = [
        tuple(sorted({*chosen, *fixed}, reverse=True))
        for n in range(0, min(room, len(free)) + 1)
        for chosen in itertools.combinations(free, n)
    ]
    best = min(candidates, key=cost)
    cuts: list[datetime | None] = [*best, None] if open_ended else list(best)
    slices: list[tuple[datetime | None, datetime | None]] = []
    high: datetime | None = None
    for low in cuts:
        slices.append((low, high))
        high = low
    return slices


#: Cost estimates of _slices, in "conditions per event": reading and grouping an event, and
#: joining one more slice table (relative to a year of events).
_SLICE_OVERHEAD = 5.0
_JOIN_COST = 2.0


def _sum_of(table: Any, columns: list[str]) -> Any:
    """The sum of partial counts (a customer without events in a slice has 0 there)."""
    total = table[columns[0]].fill_null(0)
    for name in columns[1:]:
        total = total + table[name].fill_null(0)
    return total.cast("int64")


def _count_if_signature(condition: bool) -> int:
    """DuckDB's native ``count_if`` aggregate; only the signature is used."""
    raise NotImplementedError


_count_if: Any = ibis.udf.agg.builtin(_count_if_signature, name="count_if")


def _backend_name(expr: Any) -> str | None:
    """The engine an expression is bound to (None for an unbound one)."""
    try:
        return str(ibis.get_backend(expr).name)
    except Exception:  # unbound tables (ibis.table) have no backend
        return None


def _get_json_object(json: str, path: str) -> str:
    """Spark's native JSON path read (no Python UDF); only the signature is used."""
    raise NotImplementedError


_json_path: Any = ibis.udf.scalar.builtin(_get_json_object, name="get_json_object")


def _unwrap(t: Any, parts: tuple[str, ...], want: ValueType | None) -> Any:
    """``t.<json column>[key]...`` read as ``want`` (boolean when used alone as a condition).

    JSON columns use Ibis's JSON operations. A JSON document held as text (Spark reading the
    Parquet export, where Ibis's JSON support goes through Python UDFs) is read with the
    engine's own ``get_json_object``; text comes back for any scalar, so numbers and booleans
    are cast from it.
    """
    raw = t[parts[0]]
    if raw.type().is_string():
        text = _json_path(raw, "$." + ".".join(parts[1:]))
        if want == "number":
            return text.cast("float64")
        if want == "boolean" or want is None:
            return text.isin(["true", "false"]).ifelse(text == "true", ibis.null("boolean"))
        return text
    for part in parts[1:]:
        raw = raw[part]
    if want == "string":
        return raw.str
    if want == "number":
        return raw.float
    if want == "boolean" or want is None:
        return raw.bool
    return raw


def _and_terms(node: Expr) -> list[Expr]:
    """The terms of a (nested) ``and``: ``a and (b and c)`` -> ``[a, b, c]``."""
    if isinstance(node, BoolOp) and node.op == "and":
        return [*_and_terms(node.left), *_and_terms(node.right)]
    return [node]


def _customer_paths(node: Expr) -> list[Path]:
    """Attribute paths outside aggregates (those inside read events, not customers)."""
    if isinstance(node, Path):
        return [node]
    if isinstance(node, Call):
        return []
    return [p for child in children(node) for p in _customer_paths(child)]


_COMPARE: dict[str, Any] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def compile_tags(
    definitions: Mapping[str, str | Expr],
    *,
    customers: Any,
    events: Any,
    as_of: datetime,
    schema: Mapping[str, AttrType] | None = None,
    resolver: Resolver | None = None,
) -> Any:
    """Ibis table ``customer_id`` + one boolean column per definition (its key), one event scan."""
    compiler = Compiler(
        customers=customers, events=events, as_of=as_of, schema=schema, resolver=resolver
    )
    trees = {name: compiler.add(text) for name, text in definitions.items()}
    table = compiler.joined()
    columns = {
        name: compiler.condition(tree, "customer", table).fill_null(False)
        for name, tree in trees.items()
    }
    return table.select("customer_id", **columns)


def compile_tag(
    expression: str | Expr,
    *,
    customers: Any,
    events: Any,
    as_of: datetime,
    schema: Mapping[str, AttrType] | None = None,
    resolver: Resolver | None = None,
) -> Any:
    """Ibis table ``(customer_id, matched)``: one row per customer of ``customers``."""
    return compile_tags(
        {"matched": expression},
        customers=customers,
        events=events,
        as_of=as_of,
        schema=schema,
        resolver=resolver,
    )

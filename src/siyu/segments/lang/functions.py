"""Aggregate functions of the tag language, registered on ``registry.tag_functions``.

Each function reduces a customer's events to one number. The compiler hands every reducer the
same inputs -- ``hit`` (the event matches the condition and lies in the window), the optional
numeric ``value`` and ``as_of`` -- and puts all reducers of all tags into one ``group_by`` over
events, so a new function costs one more column, not one more scan. Third-party functions
register the same way as these built-ins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ibis

if TYPE_CHECKING:
    from siyu.registry import Registry

Reducer = Callable[[Any, Any, Any, datetime], Any]


@dataclass(frozen=True)
class AggregateFunction:
    """``name([value,] [condition,] [last N])``, compiled by ``reduce(hit, value, ts, as_of)``.

    ``empty`` is the value for a customer with no events at all (0 for counts and sums, None
    where there is nothing to report, e.g. days since the latest event).
    """

    name: str
    doc: str
    reduce: Reducer
    takes_value: bool = False
    empty: int | None = 0

    @property
    def signature(self) -> str:
        value = "value, " if self.takes_value else ""
        return f"{self.name}({value}[condition,] [last N])"


def whole_days(earlier: Any, as_of: datetime) -> Any:
    """Whole days from ``earlier`` to ``as_of`` (floor), the same on every engine."""
    seconds = ibis.literal(as_of).epoch_seconds() - earlier.epoch_seconds()
    return (seconds / 86_400).floor().cast("int64")


def _count(hit: Any, value: Any, ts: Any, as_of: datetime) -> Any:
    return hit.ifelse(1, 0).sum()


#: The built-in ``count`` reducer, which the compiler may replace with an engine's native one.
count_reducer = _count


def _sum(hit: Any, value: Any, ts: Any, as_of: datetime) -> Any:
    return hit.ifelse(value, ibis.null("float64")).sum()


def _avg(hit: Any, value: Any, ts: Any, as_of: datetime) -> Any:
    return hit.ifelse(value, ibis.null("float64")).mean()


def _min(hit: Any, value: Any, ts: Any, as_of: datetime) -> Any:
    return hit.ifelse(value, ibis.null("float64")).min()


def _max(hit: Any, value: Any, ts: Any, as_of: datetime) -> Any:
    return hit.ifelse(value, ibis.null("float64")).max()


def _days_since(hit: Any, value: Any, ts: Any, as_of: datetime) -> Any:
    return whole_days(hit.ifelse(ts, ibis.null("timestamp")).max(), as_of)


def _days_since_first(hit: Any, value: Any, ts: Any, as_of: datetime) -> Any:
    return whole_days(hit.ifelse(ts, ibis.null("timestamp")).min(), as_of)


BUILTIN_FUNCTIONS: dict[str, AggregateFunction] = {
    f.name: f
    for f in (
        AggregateFunction("count", "Number of matching events.", _count),
        AggregateFunction("sum", "Sum of a numeric event value.", _sum, takes_value=True),
        AggregateFunction(
            "avg", "Average of a numeric event value.", _avg, takes_value=True, empty=None
        ),
        AggregateFunction(
            "min", "Smallest numeric event value.", _min, takes_value=True, empty=None
        ),
        AggregateFunction(
            "max", "Largest numeric event value.", _max, takes_value=True, empty=None
        ),
        AggregateFunction(
            "days_since",
            "Whole days from the latest matching event to as_of.",
            _days_since,
            empty=None,
        ),
        AggregateFunction(
            "days_since_first",
            "Whole days from the earliest matching event to as_of.",
            _days_since_first,
            empty=None,
        ),
    )
}


def register(registry: Registry) -> None:
    """Register the built-in aggregate functions."""
    for function in BUILTIN_FUNCTIONS.values():
        registry.tag_functions.register(function.name, function)


def lookup(name: str) -> AggregateFunction | None:
    """The function called ``name``: registered ones first, then the built-ins."""
    from siyu.registry import registry

    if name in registry.tag_functions:
        found = registry.tag_functions.get(name)
        return found if isinstance(found, AggregateFunction) else None
    return BUILTIN_FUNCTIONS.get(name)


def known_names() -> list[str]:
    from siyu.registry import registry

    return sorted(set(BUILTIN_FUNCTIONS) | set(registry.tag_functions.names()))

"""Every error message of the tag language, with a source that triggers it and its position.

Shared by the parser and checker tests and by the docs test (docs/tags.md lists each message).
"""

from __future__ import annotations

# (source, full message) -- syntax errors start with "at L:C:", type errors end with "at L:C".
SYNTAX_ERRORS: list[tuple[str, str]] = [
    ("country in ( )", "at 1:14: expected a value after 'in (', found ')'"),
    ("country not in ()", "at 1:17: expected a value after 'not in (', found ')'"),
    ('country in ("ID",)', "at 1:18: expected a value after ',' in the list, found ')'"),
    ('country in ("ID" "TH")', "at 1:18: expected ',' or ')' in the list, found the string \"TH\""),
    (
        "country in (language)",
        "at 1:13: expected a literal (a string, a number, true or false) in the list, "
        "found 'language'",
    ),
    ('country in "ID"', "at 1:12: expected '(' after 'in', found the string \"ID\""),
    ("age > ", "at 1:6: expected a value after '>', found end of input"),
    ("", "at 1:1: expected a value, found end of input"),
    (
        "age == null",
        "at 1:8: expected a value after '==' (test for a missing value with 'is null'), "
        "found 'null'",
    ),
    ("age == 1 age", "at 1:10: expected 'and', 'or' or end of input, found 'age'"),
    (
        "age == 1 AND age == 2",
        "at 1:10: expected 'and', 'or' or end of input, found 'AND' "
        "(keywords are lower case: 'and')",
    ),
    ("(age == 1", "at 1:10: expected 'and', 'or' or ')', found end of input"),
    ("age not 5", "at 1:9: expected 'in' or 'between' after 'not', found the number 5"),
    ("age between 1 or 2", "at 1:15: expected 'and' in 'between ... and ...', found 'or'"),
    ("age is 5", "at 1:8: expected 'null' or 'not null' after 'is', found the number 5"),
    ("age is not 5", "at 1:12: expected 'null' after 'is not', found the number 5"),
    ("traits. == 1", "at 1:9: expected a name after '.', found '=='"),
    (
        "count(last 30) > 1",
        "at 1:12: expected a duration such as 30d, 12w, 6m or 1y after 'last', found the number 30",
    ),
    ('count(last 30d, event == "x") > 1', "at 1:15: expected ')' after the window, found ','"),
    ('count(event == "x" 1) > 1', "at 1:20: expected 'and', 'or', ',' or ')', found the number 1"),
    (
        'days_since(event == "x") > 30d',
        "at 1:28: a duration (30d) is only allowed after 'last', as in count(..., last 30d)",
    ),
    ("age = 30", "at 1:5: unexpected '='; use '==' to compare"),
    ("!tag:x", "at 1:1: unexpected '!'; use '!=' or 'not'"),
    ("age # 3", "at 1:5: unexpected character '#'"),
    ('country == "ID', 'at 1:12: unterminated string; expected a closing "'),
    (
        r'country == "I\qD"',
        r"at 1:14: unknown escape '\q' in a string; use \\, \", \', \n, \t, \r, \0 or \uXXXX",
    ),
    ("age > 1. and x", "at 1:9: expected a digit after '.' in a number"),
    (
        "count(last 30x) > 1",
        "at 1:14: unknown duration unit 'x' in '30x'; use d (days), w (weeks), m (months) "
        "or y (years)",
    ),
    ("count(last 1.5d) > 1", "at 1:12: a duration needs a positive whole number, found '1.5d'"),
    ("tag: and age > 1", "at 1:5: expected a name after 'tag:', as in tag:high_value"),
]

TYPE_ERRORS: list[tuple[str, str]] = [
    ('age > "x"', "'age' is a number; cannot compare it with the string \"x\" at 1:7"),
    ('"x" < age', "'age' is a number; cannot compare it with the string \"x\" at 1:1"),
    ('country in ("ID", 1)', "'country' is a string; cannot compare it with the number 1 at 1:19"),
    (
        'age between 20 and "x"',
        "'age' is a number; cannot compare it with the string \"x\" at 1:20",
    ),
    (
        'birthday < "yesterday"',
        "'birthday' is a date; cannot compare it with the string \"yesterday\" "
        '(write dates as "2025-01-31") at 1:12',
    ),
    (
        'first_seen_at > "May"',
        "'first_seen_at' is a timestamp; cannot compare it with the string \"May\" "
        '(write timestamps as "2025-01-31T12:00:00") at 1:17',
    ),
    (
        "traits.a == traits.b",
        "cannot compare two untyped values ('traits.a' and 'traits.b'); "
        "compare one of them with a literal at 1:13",
    ),
    ("traits.since < birthday", "cannot compare an untyped JSON value with a date at 1:16"),
    (
        'traits.x between 1 and "9"',
        "the bounds of 'between' must have one type; found the number 1 and the string "
        '"9" at 1:24',
    ),
    ("traits.vip < true", "booleans can only be compared with == or != (found '<') at 1:14"),
    (
        "country",
        "'country' is a string; a condition needs a comparison, such as country == ... at 1:1",
    ),
    (
        'count(event == "x")',
        'count(event == "x") is a number; compare it, as in count(event == "x") > 0 at 1:1',
    ),
    ("1 and tag:x", "the number 1 is not a condition at 1:1"),
    ('contry == "ID"', "unknown attribute 'contry'; did you mean 'country'? at 1:1"),
    ('count(evnt == "x") > 0', "unknown event field 'evnt'; did you mean 'event'? at 1:7"),
    ('count(properties == "x") > 0', "expected a property name after 'properties.' at 1:7"),
    (
        'count(country == "ID") > 0',
        "'country' is a customer attribute; inside an event condition only event, type, "
        "source_id, name and properties.* are allowed at 1:7",
    ),
    (
        'properties.category == "baby"',
        "'properties.category' is an event property; use it inside an event function, "
        "as in count(properties.category == ..., last 30d) at 1:1",
    ),
    (
        'event == "Order Completed"',
        "'event' is an event field; use it inside an event function, "
        "as in count(event == ..., last 30d) at 1:1",
    ),
    ("count(tag:vip) > 0", "tag:vip cannot be used inside an event condition at 1:7"),
    ("count(count() > 1) > 0", "count() cannot be nested inside an event condition at 1:7"),
    (
        'cnt(event == "x") > 0',
        "unknown function 'cnt'; did you mean 'count'? (functions: avg, count, days_since, "
        "days_since_first, max, min, sum) at 1:1",
    ),
    (
        "sum() > 0",
        "sum() needs a value such as properties.total; usage: "
        "sum(value, [condition,] [last N]) at 1:1",
    ),
    (
        'sum(event, event == "x") > 0',
        "sum() needs a number, but 'event' is a string; usage: "
        "sum(value, [condition,] [last N]) at 1:5",
    ),
    (
        'count(event == "a", event == "b") > 0',
        "too many arguments to count(); usage: count([condition,] [last N]) at 1:21",
    ),
]

# Reference errors need a resolver (see test_checker.py: kinds tag, tier; tag:vip exists).
REFERENCE_ERRORS: list[tuple[str, str]] = [
    ("rfm:champions", "unknown reference kind 'rfm:' (known: tag, tier) at 1:1"),
    ("tag:nope", "unknown tag 'nope' at 1:1"),
]
NO_RESOLVER_ERROR = ("tag:vip", "tag:vip: references cannot be used here at 1:1")

# inline_references({"a": "tag:b and age > 1", "b": "country == 'ID' or tag:a"})
CYCLE_ERROR = "tag:a refers back to itself (a -> b -> a) at 1:20"

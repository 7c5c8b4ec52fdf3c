"""Rendering: a sandboxed Jinja2 environment, locale fallback and Babel filters.

Templates are written by operators, so they run in Jinja's ``SandboxedEnvironment`` (no access
to Python internals) with ``StrictUndefined`` (a missing variable is an error, never an empty
string in a customer's inbox). Money and dates are formatted for the customer's locale and time
zone by the ``money``, ``number``, ``date`` and ``datetime`` filters, which read the locale and
zone the renderer puts into the context (``_locale``, ``_tz``).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.languages import get_official_languages
from babel.numbers import format_currency, format_decimal
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from siyu.errors import InvalidInput


def norm_locale(value: str) -> str:
    """'de_de' / 'de-DE' -> 'de-DE' (BCP 47 spelling, for comparison and storage)."""
    parts = value.replace("_", "-").split("-")
    head = parts[0].lower()
    rest = [p.upper() if len(p) == 2 else p.title() if len(p) == 4 else p for p in parts[1:]]
    return "-".join([head, *rest])


def _base(value: str) -> str:
    return norm_locale(value).split("-")[0]


def market_languages(country: str | None) -> list[str]:
    """The official languages of a country, most used first ('CH' -> de, fr, it, rm)."""
    if not country:
        return []
    try:
        return [str(code) for code in get_official_languages(country.upper(), de_facto=True)]
    except Exception:  # an unknown territory has no languages, not an error
        return []


def pick_locale(
    available: Collection[str], language: str | None, country: str | None, default: str
) -> str:
    """The variant to use: customer language, then market language, then the default.

    At each step an exact match ('de-AT') wins over a same-language variant ('de-DE').
    Cached: a batch asks the same few questions thousands of times.
    """
    return _pick_locale(tuple(sorted(available)), language, country, default)


@functools.lru_cache(maxsize=4096)
def _pick_locale(
    available: tuple[str, ...], language: str | None, country: str | None, default: str
) -> str:
    by_norm = {norm_locale(a): a for a in available}
    chain: list[str] = []
    if language:
        chain.append(norm_locale(language))
    for lang in market_languages(country):
        if country:
            chain.append(norm_locale(f"{lang}-{country}"))
        chain.append(lang)
    for cand in chain:
        if cand in by_norm:
            return by_norm[cand]
        same = sorted(a for n, a in by_norm.items() if _base(n) == _base(cand))
        if same:
            return same[0]
    return default


@functools.lru_cache(maxsize=1024)
def babel_locale(language: str | None, country: str | None, fallback: str) -> Locale:
    """The formatting locale: the customer's language in their country when Babel knows it."""
    candidates = []
    if language:
        lang = norm_locale(language)
        if "-" not in lang and country:
            candidates.append(f"{lang}_{country.upper()}")
        candidates.append(lang.replace("-", "_"))
    candidates.extend([fallback.replace("-", "_"), "en"])
    for cand in candidates:
        try:
            return Locale.parse(cand)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def _moment(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a date or time: {value!r}")


@pass_context
def money_filter(ctx: Context, amount: Any, currency: str | None = None) -> str:
    """``{{ total | money('EUR') }}`` -> '1.234,50 €' for de-DE."""
    cur = currency or ctx.get("_currency") or "USD"
    return _money(_decimal(amount), str(cur), ctx.get("_locale", "en"))


@functools.lru_cache(maxsize=8192)
def _money(amount: Decimal, currency: str, locale: Locale | str) -> str:
    """Babel's formatting is costly and the same offer amount repeats across a batch."""
    return str(format_currency(amount, currency, locale=locale))


@pass_context
def number_filter(ctx: Context, value: Any) -> str:
    return str(format_decimal(_decimal(value), locale=ctx.get("_locale", "en")))


@pass_context
def date_filter(ctx: Context, value: Any, fmt: str = "medium") -> str:
    """A date in the customer's locale, on the customer's local calendar day."""
    local = _moment(value).astimezone(ctx.get("_tz") or UTC)
    return str(format_date(local.date(), format=fmt, locale=ctx.get("_locale", "en")))


@pass_context
def datetime_filter(ctx: Context, value: Any, fmt: str = "medium") -> str:
    """A moment in the customer's locale and time zone."""
    return str(
        format_datetime(
            _moment(value), format=fmt, tzinfo=ctx.get("_tz") or UTC, locale=ctx.get("_locale")
        )
    )


FILTERS = {
    "money": money_filter,
    "number": number_filter,
    "date": date_filter,
    "datetime": datetime_filter,
}


def _env(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape)
    env.filters.update(FILTERS)
    return env


@functools.cache
def text_env() -> SandboxedEnvironment:
    return _env(False)


@functools.cache
def html_env() -> SandboxedEnvironment:
    return _env(True)


@functools.lru_cache(maxsize=2048)
def compile_template(source: str, html: bool = False) -> Template:
    """Compile once per distinct source (templates are few, messages many)."""
    env = html_env() if html else text_env()
    return env.from_string(source)


def parse(source: str, where: str, html: bool = False) -> nodes.Template:
    """The template's AST; a syntax error names the part and line."""
    env = html_env() if html else text_env()
    try:
        return env.parse(source)
    except TemplateSyntaxError as exc:
        raise InvalidInput(
            f"{where}: template syntax error on line {exc.lineno}: {exc.message}",
            hint="Fix the Jinja syntax ({{ variable }}, {% if %}...{% endif %}).",
            field=where,
        ) from exc


def used_variables(ast: nodes.Template) -> dict[str, set[str]]:
    """Top-level variables the template reads -> the attributes it reads of each.

    Variables the template assigns itself ({% set %}, loop targets) are not reported.
    """
    from jinja2 import meta

    names = meta.find_undeclared_variables(ast)
    attrs: dict[str, set[str]] = {n: set() for n in names}
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in attrs:
            attrs[node.node.name].add(node.attr)
    return attrs


def render(source: str | None, variables: Mapping[str, Any], html: bool = False) -> str | None:
    if source is None:
        return None
    return compile_template(source, html).render(variables)

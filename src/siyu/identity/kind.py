"""What an identifier kind is: its normaliser, its weight in merges, and its options.

:class:`IdentifierKind` is the one shape every kind has, built-in or plugin; nothing in siyu
switches on a kind's name. :class:`InvalidIdentifier` is the error every refused value raises.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from siyu.errors import ConfigError, InvalidInput
from siyu.identity.normalisers import NormaliseContext, NormaliseError, Normaliser
from siyu.registry import Registry
from siyu.registry import registry as process_registry

_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_NAMESPACED = re.compile(r"^([a-z0-9][a-z0-9_.\-]{0,63}):(.+)$", re.DOTALL)
_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff]")
_REGION_ALIASES = {"UK": "GB"}  # the ISO code people most often get wrong
MAX_RAW_LENGTH = 1024
"""Longer raw values are refused before any parsing: no identifier is that long."""


class InvalidIdentifier(InvalidInput):
    """A value cannot be normalised as the named identifier kind; ``reason`` says why."""

    code = "invalid_identifier"
    default_hint = "Correct the value at its source, or leave it out of the record."

    def __init__(
        self,
        kind: str,
        value: str,
        reason: str,
        *,
        noun: str = "identifier",
        region: str | None = None,
        hint: str | None = None,
    ) -> None:
        shown = value if len(value) <= 64 else value[:61] + "..."
        where = f" for region {region}" if region else ""
        super().__init__(
            f"{kind} {shown!r} is not a valid {noun}{where}: {reason}",
            hint=hint,
            field=kind,
            details={"kind": kind, "reason": reason, **({"region": region} if region else {})},
        )
        self.kind = kind
        self.value = value
        self.reason = reason
        self.region = region


@dataclass(frozen=True, kw_only=True)
class IdentifierKind:
    """One kind of customer identifier and the rules One-ID applies to it."""

    name: str
    description: str
    normaliser: Normaliser = field(repr=False)
    is_person_level: bool
    """Strong evidence of one person (email, phone); weak kinds (cookies, devices) are shared."""
    merge_priority: int
    """Lower is stronger: when identifiers disagree, the lower priority kind wins."""
    max_per_customer: int | None
    """Distinct values one customer may hold before a merge is refused (None: unlimited).
    For ``namespace_by_source`` kinds the limit applies per source."""
    limit_window_days: int | None = None
    """When set, ``max_per_customer`` counts only values first seen within any window of this
    many days (at most 5 new emails in 30 days) instead of all values ever."""
    namespace_by_source: bool = False
    """Values are only unique within their source, so they are stored as 'source:value'."""
    uses_region: bool = False
    """The normaliser reads national formats in the customer's market region."""
    noun: str = "identifier"
    """What a value is called in error messages ('number', 'address')."""
    same_values_as: str | None = None
    """Another kind whose normalised values denote the same thing (whatsapp -> phone)."""
    blocked_patterns: tuple[str, ...] = ()
    """Default placeholder patterns for this kind, on top of :data:`UNIVERSAL_BLOCKED_PATTERNS`."""
    options: Mapping[str, object] = field(default_factory=dict, hash=False)
    """Option defaults; a workspace changes them with :meth:`with_options`."""

    def __post_init__(self) -> None:
        if not _KIND_NAME.match(self.name):
            raise ConfigError(f"Identifier kind name {self.name!r} is not snake_case.")
        if self.max_per_customer is not None and self.max_per_customer < 1:
            raise ConfigError(f"Identifier kind {self.name!r}: max_per_customer must be >= 1.")
        if self.limit_window_days is not None and self.limit_window_days < 1:
            raise ConfigError(f"Identifier kind {self.name!r}: limit_window_days must be >= 1.")
        for pattern in self.blocked_patterns:
            compile_pattern(pattern)
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def with_options(self, **options: object) -> IdentifierKind:
        """This kind with some options changed; unknown names and wrong types are refused."""
        for key, value in options.items():
            if key not in self.options:
                known = ", ".join(sorted(self.options)) or "none"
                raise ConfigError(
                    f"Identifier kind '{self.name}' has no option '{key}'.",
                    hint=f"Options of '{self.name}': {known}.",
                )
            default = self.options[key]
            if default is not None and type(value) is not type(default):
                raise ConfigError(
                    f"Option '{key}' of identifier kind '{self.name}' must be "
                    f"{type(default).__name__}, got {value!r}."
                )
        return dataclasses.replace(self, options={**self.options, **options})

    def normalise(self, value: str, *, region: str | None = None, source: str | None = None) -> str:
        """The canonical spelling of ``value``, or :class:`InvalidIdentifier` saying why not.

        ``region`` is the customer's market (ISO 3166 alpha-2), used by kinds that read national
        formats; ``source`` is required by ``namespace_by_source`` kinds unless the value is
        already written 'source:value'.
        """
        shown_region = None
        if isinstance(region, str):
            shown_region = _REGION_ALIASES.get(region.strip().upper(), region.strip().upper())
        if not isinstance(value, str):
            reason = f"must be text, not {type(value).__name__}"
            raise self._invalid(repr(value), reason, shown_region)
        try:
            return self._normalise(value, region, source)
        except NormaliseError as exc:
            raise self._invalid(value, exc.reason, shown_region, exc.hint) from None

    def _normalise(self, value: str, region: str | None, source: str | None) -> str:
        if len(value) > MAX_RAW_LENGTH:
            raise NormaliseError(f"is longer than {MAX_RAW_LENGTH} characters")
        text = _INVISIBLE.sub("", value).strip()
        if not text:
            raise NormaliseError("is empty")
        ctx = NormaliseContext(
            region=_region(region) if self.uses_region else None,
            source=_source(source) if source is not None else None,
            options=self.options,
        )
        if not self.namespace_by_source:
            return self.normaliser(text, ctx)
        if ctx.source is not None:
            # An already-namespaced value ('shopify:123' from source 'shopify') is kept as is.
            local = text.removeprefix(ctx.source + ":").strip()
        else:
            match = _NAMESPACED.match(text)
            if not match:
                raise NormaliseError(
                    "is only unique within its source, and no source was given",
                    hint="Pass source= (e.g. 'shopify'), or write the value as 'shopify:123'.",
                )
            ctx = dataclasses.replace(ctx, source=match.group(1))
            local = match.group(2).strip()
        if not local:
            raise NormaliseError("is empty after its source prefix")
        return f"{ctx.source}:{self.normaliser(local, ctx)}"

    def _invalid(
        self, value: str, reason: str, region: str | None, hint: str | None = None
    ) -> InvalidIdentifier:
        return InvalidIdentifier(
            self.name,
            value,
            reason,
            noun=self.noun,
            region=region if self.uses_region else None,
            hint=hint,
        )


def _region(region: str | None) -> str | None:
    if region is None:
        return None
    code = region.strip().upper()
    code = _REGION_ALIASES.get(code, code)
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise NormaliseError(
            f"region {region!r} is not an ISO 3166 alpha-2 code",
            hint="Use a two-letter market code such as US, GB, ID or BR.",
        )
    return code


def _source(source: str) -> str:
    name = source.strip().lower()
    if not _SOURCE.match(name):
        raise NormaliseError(
            f"source {source!r} is not a valid source name",
            hint="Source names are lower-case letters, digits, '.', '_' and '-', e.g. 'shopify'.",
        )
    return name


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a blocked-value pattern once; a bad pattern is a configuration error."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(
            f"Blocked-value pattern {pattern!r} is not a valid regular expression: {exc}."
        ) from None


def get_kind(kind: IdentifierKind | str, registry: Registry | None = None) -> IdentifierKind:
    """Resolve a kind name through the registry (the process-wide one unless given)."""
    if isinstance(kind, IdentifierKind):
        return kind
    found = (registry or process_registry).identifier_kinds.get(kind)
    if not isinstance(found, IdentifierKind):
        raise ConfigError(f"identifier kind '{kind}' is registered as {type(found).__name__}.")
    return found

"""Every extension point of siyu, declared in one place.

An extension point is a named registry of implementations (channels, importers, identifier kinds,
tag functions, model fitters, engines, event schemas). Built-ins register through exactly the same
call as third-party plugins: each built-in module listed in ``BUILTIN_MODULES`` exposes
``register(registry)``, which :func:`load_builtins` calls once, on first use (never at import).
A point loads only the built-in modules that register into it (``BUILTIN_MODULES`` says which,
a test checks it): looking up an identifier kind does not import the importers, the BTYD
fitters and Ibis (about 1.5 s of a command's start).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from siyu.errors import NotFound, SiyuError

T = TypeVar("T")


class ExtensionPoint(Generic[T]):
    """A named set of implementations of one kind."""

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.doc = doc
        self.key = ""
        """The point's attribute name in :class:`Registry` (set by it): what built-ins declare."""
        self._items: dict[str, T] = {}

    def register(self, key: str, item: T, *, replace: bool = False) -> T:
        """Add ``item`` under ``key``; a second registration of a key is an error unless replace."""
        if key in self._items and not replace and self._items[key] is not item:
            raise SiyuError(
                f"{self.name} '{key}' is already registered.",
                hint="Pick another name, or pass replace=True to override the built-in.",
            )
        self._items[key] = item
        return item

    def get(self, key: str) -> T:
        load_builtins(self.key)
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise NotFound(
                f"Unknown {self.name} '{key}'.", hint=f"Known {self.name} names: {known}."
            ) from None

    def names(self) -> list[str]:
        load_builtins(self.key)
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        load_builtins(self.key)
        return iter(sorted(self._items.items()))

    def __contains__(self, key: object) -> bool:
        load_builtins(self.key)
        return key in self._items


class Registry:
    """The extension points. ``registry`` below is the process-wide instance."""

    def __init__(self) -> None:
        self.event_schemas: ExtensionPoint[Any] = ExtensionPoint(
            "event schema", "Pydantic model of the properties of a named track event."
        )
        self.identifier_kinds: ExtensionPoint[Any] = ExtensionPoint(
            "identifier kind", "A kind of customer identifier with its normaliser and validation."
        )
        self.importers: ExtensionPoint[Any] = ExtensionPoint(
            "importer", "Turns a store export file into canonical events."
        )
        self.channels: ExtensionPoint[Any] = ExtensionPoint(
            "channel", "Delivers a rendered message (email, WhatsApp, SMS, webhook, outbox)."
        )
        self.tag_functions: ExtensionPoint[Any] = ExtensionPoint(
            "tag function", "A function usable in the tag language, compiled to Ibis."
        )
        self.model_fitters: ExtensionPoint[Any] = ExtensionPoint(
            "model fitter", "A predictive model (CLV, churn, recommendations) with fit/predict."
        )
        self.engines: ExtensionPoint[Any] = ExtensionPoint(
            "engine", "A compute engine Ibis expressions run on (duckdb, postgres, pyspark)."
        )
        self.rewards: ExtensionPoint[Any] = ExtensionPoint(
            "reward", "A reward a journey step can grant (coupon, points)."
        )
        self.merge_followers: ExtensionPoint[Any] = ExtensionPoint(
            "merge follower",
            "Re-keys a slice's per-customer rows when One-ID merges or splits customers: "
            "fn(conn, workspace_id, moves) -> rows changed, where moves names a staged table "
            "with columns old_customer_id, new_customer_id.",
        )
        self.profile_sections: ExtensionPoint[Any] = ExtensionPoint(
            "profile section",
            "Adds a section to a customer's golden record: "
            "fn(request: siyu.profiles.ProfileRequest) -> JSON-able value, or None to omit it.",
        )
        self.content_checks: ExtensionPoint[Any] = ExtensionPoint(
            "content check",
            "A market rule a rendered message must pass before sending: "
            "fn(siyu.messaging.content.ContentInput) -> problem sentence, or None.",
        )

        for key, point in self.points().items():
            point.key = key

    def points(self) -> dict[str, ExtensionPoint[Any]]:
        return {k: v for k, v in vars(self).items() if isinstance(v, ExtensionPoint)}


registry = Registry()

# Built-in plugins: each module has register(registry) and is listed with the extension points
# it registers into. Add new built-ins here.
BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "siyu.collect.ecommerce": ("event_schemas",),
    "siyu.collect.importers": ("importers",),
    "siyu.compute.engines": ("engines",),
    "siyu.fission.followers": ("merge_followers",),
    "siyu.identity.identifiers": ("identifier_kinds",),
    "siyu.loyalty.plugin": ("merge_followers", "rewards", "profile_sections"),
    "siyu.identity.follow": ("merge_followers",),
    "siyu.journeys.merge": ("merge_followers",),
    "siyu.predict.btyd": ("model_fitters",),
    "siyu.predict.plugin": ("merge_followers", "model_fitters"),
    "siyu.profiles.sections": ("profile_sections",),
    "siyu.segments.followers": ("merge_followers",),
    "siyu.segments.lang.functions": ("tag_functions",),
    "siyu.messaging.channels": ("channels", "content_checks"),
}

_loaded: set[str] = set()
_lock = threading.RLock()  # a module's register() may look up another point


def load_builtins(point: str | None = None) -> None:
    """Register the built-in modules of one extension point (all points: None), each once."""
    wanted = [
        name
        for name, points in BUILTIN_MODULES.items()
        if name not in _loaded and (point is None or point in points)
    ]
    if not wanted:
        return
    with _lock:
        for module_name in wanted:
            if module_name in _loaded:
                continue
            _loaded.add(module_name)
            module = importlib.import_module(module_name)
            register: Callable[[Registry], None] = module.register
            register(registry)

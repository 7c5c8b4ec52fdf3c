"""One-ID: customer identifiers, their normalisation, and the identity graph.

Other slices import only what this module exports.
"""

from siyu.identity.identifiers import (
    BUILTIN_KINDS,
    UNIVERSAL_BLOCKED_PATTERNS,
    IdentifierKind,
    InvalidIdentifier,
    NormaliseContext,
    NormaliseError,
    Normaliser,
    default_blocked_patterns,
    get_kind,
    is_blocked,
    normalise_many,
    register,
)


def __getattr__(name: str) -> object:
    """The graph functions load lazily: importing the identifier kinds (as the registry does at
    start-up) must not pull in the collect slice, the store and SciPy."""
    lazy = {
        "resolve_workspace": "siyu.identity.graph",
        "resolve_new_events": "siyu.identity.graph",
        "split": "siyu.identity.graph",
        "explain": "siyu.identity.explain",
        "evaluate": "siyu.identity.evaluate",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(name)


__all__ = [
    "BUILTIN_KINDS",
    "UNIVERSAL_BLOCKED_PATTERNS",
    "IdentifierKind",
    "InvalidIdentifier",
    "NormaliseContext",
    "NormaliseError",
    "Normaliser",
    "default_blocked_patterns",
    "evaluate",
    "explain",
    "get_kind",
    "is_blocked",
    "normalise_many",
    "register",
    "resolve_new_events",
    "resolve_workspace",
    "split",
]

"""One-ID: customer identifiers, their normalisation, and (later) the identity graph.

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

__all__ = [
    "BUILTIN_KINDS",
    "UNIVERSAL_BLOCKED_PATTERNS",
    "IdentifierKind",
    "InvalidIdentifier",
    "NormaliseContext",
    "NormaliseError",
    "Normaliser",
    "default_blocked_patterns",
    "get_kind",
    "is_blocked",
    "normalise_many",
    "register",
]

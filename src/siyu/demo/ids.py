"""Identifiers that look like the real ones and are unique by construction.

Every identifier that must be unique (phone numbers, customer ids, order ids, relay addresses)
comes from a bijection of the global person index (and order number): ``(n * A + B) mod space``
with ``A`` coprime to the space. That keeps them collision-free without a registry of used
values, independent of how the run is chunked, and different for every seed (through ``B``).
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from functools import cache

_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@cache
def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")


@cache
def _multiplier(kind: str, space: int) -> int:
    """A multiplier coprime to ``space`` with random-looking digits, so steps mix every digit."""
    a = _digest(f"{kind}/{space}") % space | 1
    while math.gcd(a, space) != 1:
        a += 2
    return a


def perm(kind: str, n: int, space: int, seed: int) -> int:
    """A seed-dependent bijection of ``[0, space)``; unique for every ``n < space``."""
    offset = (seed * 0x9E3779B97F4A7C15 + _digest(kind)) % space
    return (n * _multiplier(kind, space) + offset) % space


def base36(value: int, width: int) -> str:
    """Upper-case base-36 digits, left-padded to ``width``."""
    digits = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        digits.append(_ALPHANUMERIC[rem])
    return "".join(reversed(digits))


def ascii_slug(text: str) -> str:
    """'Jürgen' -> 'jurgen', 'John Paul' -> 'johnpaul', 'Al-Harbi' -> 'alharbi' (for e-mails)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def shopify_customer_id(pid: int, seed: int) -> str:
    return str(6_100_000_000_000 + perm("shopify", pid, 10**12, seed))


def amazon_buyer_id(pid: int, seed: int) -> str:
    return "A" + base36(perm("amazon_buyer", pid, 36**13, seed), 13)


def amazon_relay(pid: int, seed: int, tld: str) -> str:
    local = base36(perm("relay", pid, 36**14, seed), 14).lower()
    return f"{local}@marketplace.amazon.{tld}"


def tiktok_user_id(pid: int, seed: int) -> str:
    return str(7_000_000_000_000_000_000 + perm("tiktok_user", pid, 10**18, seed))


def instagram_id(pid: int, seed: int) -> str:
    return str(17_841_400_000_000_000 + perm("igsid", pid, 10**14, seed))


def email_token(pid: int, seed: int) -> int:
    """Digits that make a person's e-mail unique (names never contain digits)."""
    return perm("email", pid, 10**7, seed)


def referral_code(first_name: str, pid: int, seed: int) -> str:
    return f"{ascii_slug(first_name)[:6].upper()}-{base36(perm('referral', pid, 36**5, seed), 5)}"


def shopify_order_id(pid: int, k: int, seed: int) -> str:
    return f"SHP-{1001 + perm('order', pid * 64 + k, 10**10, seed)}"


def amazon_order_id(pid: int, k: int, seed: int, prefix: str) -> str:
    digits = f"{perm('amazon_order', pid * 64 + k, 10**14, seed):014d}"
    return f"{prefix}-{digits[:7]}-{digits[7:]}"


def tiktok_order_id(pid: int, k: int, seed: int) -> str:
    return str(576_000_000_000_000_000 + perm("tiktok_order", pid * 64 + k, 10**15, seed))


def fill_pattern(pattern: str, digits: str) -> str:
    """Put ``digits`` into the '#' slots of a local phone format, in order."""
    out = []
    it = iter(digits)
    for ch in pattern:
        out.append(next(it) if ch == "#" else ch)
    return "".join(out)


def uuid_from(hi: int, lo: int) -> str:
    """A version-4 shaped UUID string from two 64-bit random integers."""
    value = ((hi & 0xFFFFFFFFFFFF0FFF) | 0x4000) << 64 | (lo & 0x3FFFFFFFFFFFFFFF) | 1 << 63
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

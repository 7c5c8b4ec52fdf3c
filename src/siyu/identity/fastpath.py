"""Vectorised normalisation of the common spellings, equal to the per-value normalisers.

Most raw identifiers are already in canonical form: a plain ASCII address, a phone in E.164, a
wa_id of digits. For those, the per-value normalisers (:mod:`siyu.identity.normalisers`) cost
microseconds each, and ``phonenumbers`` about 80 (parse, possible, valid): a million phones is
over a minute. Here Arrow's regular expressions (RE2) decide, a column at a time, which values
the per-value normaliser would return unchanged (lower-cased for addresses), and only the rest
go through it. The checks are *sound*: a value is taken here only when the normaliser would give
exactly this result; anything unusual (a national format, a leading zero, a national prefix, a
retired mobile format, a non-ASCII address) goes the slow, exact way. ``tests/identity`` compares
both paths on generated numbers of every region and on addresses of every shape.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS, PhoneMetadata

from siyu.identity import normalisers
from siyu.identity.kind import IdentifierKind

Bools = npt.NDArray[np.bool_]

# An address the email normaliser returns lower-cased and otherwise unchanged: dot-atom local
# part of plain characters, host-name labels, a last label that is not a number, no spaces.
_LOCAL = r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$"
_NUMERIC_TLD = r"\.[0-9]+$"
_GMAIL = r"@(?:gmail|googlemail)\.com$"
_E164 = r"^\+[1-9][0-9]{6,14}$"
_WA_ID = r"^[1-9][0-9]{6,14}$"
_NATIONAL = r"^[0-9(][0-9 ()\-./]*[0-9]$"


def fast_values(
    kind: IdentifierKind, values: pa.Array, regions: pa.Array | None
) -> tuple[Bools, pa.Array]:
    """Which values (distinct raw values of one kind) are settled here, and their normal form.

    Returns a mask and an array of normalised values (meaningful where the mask is set). Kinds
    other than the built-in email, phone and WhatsApp ones settle nothing here.
    """
    values = values.cast(pa.string())
    none = np.zeros(len(values), dtype=bool)
    if len(values) == 0:
        return none, values
    shape = getattr(kind.normaliser, "fast", None)
    if isinstance(shape, tuple):
        return _plain_ids(kind, shape, values)
    if kind.namespace_by_source:
        return none, values
    if kind.normaliser is normalisers.email:
        return _emails(kind, values)
    if kind.normaliser is normalisers.phone:
        return _phone_kind(values, regions)
    if kind.normaliser is normalisers.whatsapp:
        plus = _mask(pc.match_substring_regex(values, _E164))
        bare = _mask(pc.match_substring_regex(values, _WA_ID))
        e164 = pc.if_else(pa.array(bare), pc.binary_join_element_wise("+", values, ""), values)
        return _phones(e164, plus | bare)
    return none, values


_PLAIN_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.=\-]*$"
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_UUID = r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"


def fast_namespaced(kind: IdentifierKind, values: pa.Array, source: str) -> tuple[Bools, pa.Array]:
    """:func:`fast_values` for a kind namespaced by source: 'source:value' for plain values."""
    shape = getattr(kind.normaliser, "fast", None)
    name = source.strip().lower()
    if not isinstance(shape, tuple) or not _SOURCE.match(name) or len(values) == 0:
        return np.zeros(len(values), dtype=bool), values
    ok, out = _plain_ids(kind, shape, values.cast(pa.string()), namespaced=True)
    return ok, pc.binary_join_element_wise(name, out, ":")


def _plain_ids(
    kind: IdentifierKind, shape: tuple[object, ...], values: pa.Array, *, namespaced: bool = False
) -> tuple[Bools, pa.Array]:
    """Opaque ids and numeric platform ids spelt plainly (no spaces, controls or separators
    that need thought): kept as they are, UUIDs lower-cased where the kind folds them.

    Namespaced kinds get ``source:`` in front by the caller's ``source``; only non-namespaced
    kinds are settled here.
    """
    if kind.namespace_by_source and not namespaced:
        return np.zeros(len(values), dtype=bool), values
    if shape[0] == "pattern":  # kept as is when it matches both (RE2 '$' is Python's '\\Z')
        ok = _mask(pc.match_substring_regex(values, str(shape[1])))
        return ok & _mask(pc.match_substring_regex(values, str(shape[2]))), values
    length = np.asarray(pc.utf8_length(values).to_numpy(zero_copy_only=False), dtype=np.int64)
    if shape[0] == "digits":
        low, high = int(str(shape[1])), int(str(shape[2]))
        ok = _mask(pc.match_substring_regex(values, r"^[1-9][0-9]*$"))
        return ok & (length >= low) & (length <= high), values
    max_length, fold_uuid = int(str(shape[1])), bool(shape[2])
    ok = _mask(pc.match_substring_regex(values, _PLAIN_ID)) & (length <= max_length)
    if fold_uuid:
        uuid = pc.match_substring_regex(values, _UUID)
        return ok, pc.if_else(uuid, pc.utf8_lower(values), values)
    return ok, values


def _mask(result: pa.Array | pa.ChunkedArray) -> Bools:
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)


def _emails(kind: IdentifierKind, values: pa.Array) -> tuple[Bools, pa.Array]:
    ok = _mask(pc.match_substring_regex(values, _PLAIN_EMAIL))
    ok &= ~_mask(pc.match_substring_regex(values, _NUMERIC_TLD))
    ok &= _mask(pc.less_equal(pc.utf8_length(values), 254))
    ok &= _mask(pc.less_equal(pc.find_substring(values, "@"), 64))
    if kind.options.get("fold_gmail"):
        ok &= ~_mask(pc.match_substring_regex(values, _GMAIL, ignore_case=True))
    return ok, pc.utf8_lower(values)


# --- phones ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Desc:
    lengths: tuple[int, ...]
    pattern: str | None


@dataclass(frozen=True)
class _Region:
    leading_digits: str | None
    general: _Desc
    types: tuple[_Desc, ...]


@dataclass(frozen=True)
class _Plan:
    """What a country calling code needs: the main region's possible lengths and national
    prefix, and each region's leading digits and number-type patterns (the common types first)."""

    possible: tuple[int, ...]
    local_only: tuple[int, ...]
    national_prefix: str | None
    regions: tuple[_Region, ...]


def _desc(desc: object) -> _Desc:
    if desc is None:
        return _Desc((-1,), None)
    lengths = tuple(getattr(desc, "possible_length", ()) or ())
    return _Desc(lengths, getattr(desc, "national_number_pattern", None) or None)


@functools.lru_cache(maxsize=512)
def _plan(cc: int) -> _Plan | None:
    regions = COUNTRY_CODE_TO_REGION_CODE.get(cc)
    if not regions or "001" in regions:
        return None
    out: list[_Region] = []
    for code in regions:
        md = PhoneMetadata.metadata_for_region(code.upper(), None)
        if md is None:
            continue
        # Whether a number has some type does not depend on the order they are tried in:
        # the common ones first, so most numbers are settled by one or two patterns.
        names = ["fixed_line"]
        if not md.same_mobile_and_fixed_line_pattern:
            names.append("mobile")
        names += ["premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager"]
        names += ["uan", "voicemail"]
        types = tuple(_desc(getattr(md, n)) for n in names)
        out.append(_Region(md.leading_digits, _desc(md.general_desc), types))
    main = PhoneMetadata.metadata_for_region(regions[0].upper(), None)
    if main is None or main.general_desc is None or not out:
        return None
    general = main.general_desc
    return _Plan(
        possible=tuple(general.possible_length or ()),
        local_only=tuple(general.possible_length_local_only or ()),
        national_prefix=main.national_prefix_for_parsing or None,
        regions=tuple(out),
    )


def _phone_kind(values: pa.Array, regions: pa.Array | None) -> tuple[Bools, pa.Array]:
    """Phones as given: E.164 in any valid market, or a national spelling in the market's own
    simple format (digits, spaces, brackets, '-', '.', '/'), rewritten to E.164 as
    ``phonenumbers.parse`` would, then both checked like E.164."""
    n = len(values)
    region = pa.nulls(n, pa.string()) if regions is None else regions.cast(pa.string())
    region = pc.utf8_upper(region)
    region = pc.if_else(pc.equal(region, "UK"), "GB", region)
    known = _mask(pc.is_in(region, pa.array(sorted(SUPPORTED_REGIONS))))
    e164 = _mask(pc.match_substring_regex(values, _E164))
    ok = e164 & (known | _mask(pc.is_null(region)))
    candidates = pc.if_else(pa.array(ok), values, pa.nulls(n, pa.string()))
    national = _mask(pc.match_substring_regex(values, _NATIONAL)) & known
    national &= ~_mask(pc.starts_with(values, "00"))
    if national.any():
        digits = pc.replace_substring_regex(values, r"[ ()\-./]", "")
        for code in np.unique(np.asarray(region.to_numpy(zero_copy_only=False))[national]):
            rows = np.flatnonzero(national & _mask(pc.equal(region, str(code))))
            rewritten = _national(str(code), digits.take(pa.array(rows)))
            got = _mask(pc.is_valid(rewritten))
            if got.any():
                mask = np.zeros(n, dtype=bool)
                mask[rows[got]] = True
                filled = np.full(n, None, dtype=object)
                filled[rows] = np.asarray(rewritten.to_numpy(zero_copy_only=False), dtype=object)
                candidates = pc.if_else(pa.array(mask), pa.array(filled, pa.string()), candidates)
                ok |= mask
    settled, out = _phones(candidates, ok)
    return settled, out


def _national(region: str, digits: pa.Array) -> pa.Array:
    """E.164 for national numbers of one region (null where phonenumbers might read them
    differently: an international prefix, the country code repeated, a complex national prefix)."""
    md = PhoneMetadata.metadata_for_region(region, None)
    n = len(digits)
    if md is None or md.country_code is None or md.general_desc is None:
        return pa.nulls(n, pa.string())
    cc = str(md.country_code)
    lead = _mask(pc.starts_with(digits, cc))
    keep = ~lead
    try:
        idd = np.zeros(n, dtype=bool)
        if md.international_prefix:
            idd = _mask(pc.match_substring_regex(digits, f"^(?:{md.international_prefix})"))
            keep &= ~idd
        npp = md.national_prefix_for_parsing or None
        nsn = digits
        if npp is not None:
            prefixed = _mask(pc.match_substring_regex(digits, f"^(?:{npp})"))
            # '0|180020' (GB): a leading 0 is matched by the first alternative, as '0' alone.
            zero_first = npp == "0" or npp.startswith("0|")
            if zero_first and not md.national_prefix_transform_rule:
                if npp != "0":  # another alternative matched: left to phonenumbers
                    keep &= ~(prefixed & ~_mask(pc.starts_with(digits, "0")))
                    prefixed &= _mask(pc.starts_with(digits, "0"))
                # Stripped as phonenumbers strips it: the rest fits the general pattern and is
                # a possible length for the region.
                rest = pc.utf8_slice_codeunits(digits, 1)
                length = np.asarray(pc.utf8_length(rest).to_numpy(zero_copy_only=False))
                general = _desc(md.general_desc)
                fits = _matches(general, rest, length, prefixed)
                local = tuple(md.general_desc.possible_length_local_only or ())
                fits &= np.isin(length, general.lengths) & ~np.isin(length, local)
                keep &= ~prefixed | fits
                nsn = pc.if_else(pa.array(prefixed), rest, digits)
            else:
                keep &= ~prefixed
        with_cc = _with_country_code(md, cc, npp, digits, lead & ~idd)
    except pa.ArrowInvalid:
        return pa.nulls(n, pa.string())
    keep &= ~_mask(pc.starts_with(nsn, "0"))
    e164 = pc.binary_join_element_wise("+" + cc, nsn, "")
    national = pc.if_else(pa.array(keep), e164, pa.nulls(n, pa.string()))
    return pc.if_else(pc.is_valid(with_cc), with_cc, national)


def _with_country_code(
    md: PhoneMetadata, cc: str, npp: str | None, digits: pa.Array, lead: Bools
) -> pa.Array:
    """E.164 for numbers written with the region's country code but no '+' (``6281...`` in
    Indonesia), where phonenumbers reads the code as such: the whole number does not fit the
    region's general pattern and the rest does (``_maybe_extract_country_code``'s first test),
    and no national prefix would be stripped from the rest. Null elsewhere."""
    n = len(digits)
    general = md.general_desc.national_number_pattern if md.general_desc else None
    if not general or not lead.any():
        return pa.nulls(n, pa.string())
    rest = pc.utf8_slice_codeunits(digits, len(cc))
    take = lead & ~_mask(pc.match_substring_regex(digits, f"^(?:{general})$"))
    take &= _mask(pc.match_substring_regex(rest, f"^(?:{general})$"))
    take &= ~_mask(pc.starts_with(rest, "0"))
    if npp is not None:
        take &= ~_mask(pc.match_substring_regex(rest, f"^(?:{npp})"))
    e164 = pc.binary_join_element_wise("+" + cc, rest, "")
    return pc.if_else(pa.array(take), e164, pa.nulls(n, pa.string()))


def _phones(e164: pa.Array, candidate: Bools) -> tuple[Bools, pa.Array]:
    """E.164 candidates that ``phonenumbers`` would parse, find possible and valid unchanged."""
    ok = np.zeros(len(e164), dtype=bool)
    idx = np.flatnonzero(candidate)
    if not idx.size:
        return ok, e164
    digits = pc.utf8_slice_codeunits(e164.take(pa.array(idx)), 1)
    # The country calling code: the first of its 1-3 digit prefixes that is one (ITU codes are
    # prefix-free), as phonenumbers reads it.
    codes = np.fromiter(COUNTRY_CODE_TO_REGION_CODE, dtype=np.int64)
    cc = np.zeros(len(idx), dtype=np.int64)
    for width in (3, 2, 1):
        head = pc.cast(pc.utf8_slice_codeunits(digits, 0, width), pa.int64())
        head_np = np.asarray(head.to_numpy(zero_copy_only=False), dtype=np.int64)
        cc = np.where(np.isin(head_np, codes), head_np, cc)
    for code in np.unique(cc[cc > 0]).tolist():
        rows = np.flatnonzero(cc == code)
        plan = _plan(int(code))
        if plan is None:
            continue
        nsn = pc.utf8_slice_codeunits(digits.take(pa.array(rows)), len(str(code)))
        good = _valid(int(code), plan, nsn)
        ok[idx[rows[good]]] = True
    return ok, e164


def _valid(cc: int, plan: _Plan, nsn: pa.Array) -> Bools:
    length = np.asarray(pc.utf8_length(nsn).to_numpy(zero_copy_only=False), dtype=np.int64)
    good = np.isin(length, plan.possible) & ~np.isin(length, plan.local_only)
    good &= ~_mask(pc.starts_with(nsn, "0"))
    if cc == 52:  # Mexico's retired mobile '1' (normalisers._fix_legacy_mobile)
        good &= ~((length == 11) & _mask(pc.starts_with(nsn, "1")))
    if cc == 55:  # Brazil's eight-digit mobiles
        third = pc.utf8_slice_codeunits(nsn, 2, 3)
        good &= ~((length == 10) & _mask(pc.is_in(third, pa.array(list("6789")))))
    try:
        if plan.national_prefix:
            good &= ~_mask(pc.match_substring_regex(nsn, f"^(?:{plan.national_prefix})"))
        valid = np.zeros(len(nsn), dtype=bool)
        undecided = good.copy()
        for region in plan.regions:
            if not undecided.any():
                break
            if region.leading_digits is not None:
                chosen = undecided & _mask(
                    pc.match_substring_regex(nsn, f"^(?:{region.leading_digits})")
                )
                valid |= chosen & _typed(region, nsn, length, chosen)
            else:
                chosen = undecided & _typed(region, nsn, length, undecided)
                valid |= chosen
            undecided &= ~chosen
    except pa.ArrowInvalid:  # a pattern RE2 cannot read: leave the whole code to phonenumbers
        return np.zeros(len(nsn), dtype=bool)
    return good & valid


def _typed(region: _Region, nsn: pa.Array, length: npt.NDArray[np.int64], where: Bools) -> Bools:
    """phonenumbers' number type is not UNKNOWN (general pattern and some type's pattern)."""
    out = np.zeros(len(nsn), dtype=bool)
    if not where.any():
        return out
    out = where & _matches(region.general, nsn, length, where)
    if not out.any():
        return out
    typed = np.zeros(len(nsn), dtype=bool)
    for desc in region.types:
        todo = out & ~typed
        if not todo.any():
            break
        typed |= _matches(desc, nsn, length, todo)
    return out & typed


def _matches(desc: _Desc, nsn: pa.Array, length: npt.NDArray[np.int64], where: Bools) -> Bools:
    out = np.zeros(len(nsn), dtype=bool)
    if desc.pattern is None:
        return out
    rows = where & (np.isin(length, desc.lengths) if desc.lengths else True)
    idx = np.flatnonzero(rows)
    if idx.size:
        hit = pc.match_substring_regex(nsn.take(pa.array(idx)), f"^(?:{desc.pattern})$")
        out[idx] = _mask(hit)
    return out

"""Validation and normalisation of one chunk of raw input records.

Input: raw payloads (dicts, or JSON text/bytes) with their positions. Output: normalised calls
ready for storage, and a rejection for every record that is not. Normalisation means: UTC
timestamps (``sentAt`` clock-skew corrected), ISO currency codes, deterministic ``messageId``
when the sender gave none, and the documented event schemas checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from siyu.collect.ecommerce import Properties
from siyu.collect.fastpath import PLAIN_RULES, fast_fields, plain_properties
from siyu.collect.quarantine import Rejection
from siyu.collect.spec import CALL_TYPES, calls_adapter
from siyu.registry import registry


class Record(NamedTuple):
    """One raw input record and where it came from (row number, index in a batch)."""

    position: int
    payload: Any


class ValidCall:
    """A validated call with its normalised values and original payload.

    A plain class with its own ``__init__`` rather than a dataclass: mypyc compiles this one,
    while a dataclass's generated ``__init__`` ran as interpreted Python, one per event (about
    7% of the preparing thread's time, measured with py-spy).
    """

    __slots__ = ("customer_id", "fields", "message_id", "payload", "position", "props", "timestamp")

    def __init__(
        self,
        position: int,
        fields: dict[str, Any],
        message_id: str,
        timestamp: datetime,
        payload: dict[str, Any],
        props: BaseModel | None = None,
        customer_id: str | None = None,
    ) -> None:
        self.position = position
        self.fields = fields  # the call's field values by name (see siyu.collect.spec.Call)
        self.message_id = message_id
        self.timestamp = timestamp  # naive UTC
        self.payload = payload
        # The validated properties of a documented event; None for other events, and for
        # documented ones whose properties the fast path found plain (nothing reads the
        # instance: fastpath.plain_properties).
        self.props = props
        self.customer_id = customer_id  # provisional customer, set by the pipeline

    @property
    def event(self) -> str | None:
        return self.fields.get("event")

    def __repr__(self) -> str:
        return (
            f"ValidCall(position={self.position}, message_id={self.message_id!r}, "
            f"timestamp={self.timestamp!r}, event={self.event!r})"
        )


@dataclass
class ChunkResult:
    valid: list[ValidCall] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def _dump(payload: Any) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    try:
        return orjson.dumps(payload, default=str).decode()
    except TypeError:
        return repr(payload)


def _loc(loc: tuple[int | str, ...]) -> str:
    """Render a Pydantic error location the way the sender wrote the field."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in CALL_TYPES or item in ("function-after", "function-before"):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(record)"


def _reason(errors: list[Any], prefix: str = "", skip: int = 0) -> tuple[str, str]:
    """(field, message) for the first of a ValidationError's errors; ``skip`` drops loc items."""
    err = errors[0]
    where = _loc(tuple(err["loc"][skip:]))
    if prefix:
        where = prefix + ("" if where.startswith("[") else ".") + where
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "timezone_aware":
        msg = "timestamp has no time zone; send ISO-8601 with 'Z' or an offset such as +07:00"
    elif err["type"] == "union_tag_invalid":
        msg = f"type must be one of {', '.join(CALL_TYPES)}"
    elif err["type"] == "union_tag_not_found":
        where, msg = "type", f"type is required: one of {', '.join(CALL_TYPES)}"
    if where.endswith("(record)") and err["type"] == "value_error":
        where = "userId"
    return where, f"{where}: {msg}"


def _message_id(payload: dict[str, Any]) -> str:
    """A deterministic id for a record sent without messageId, so a resend deduplicates."""
    digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str))
    return "sha256-" + digest.hexdigest()[:40]


def _parse(
    position: int, raw: Any, max_bytes: int
) -> tuple[dict[str, Any] | None, Rejection | None]:
    payload = raw
    if isinstance(payload, bytes | str):
        size = len(payload) if isinstance(payload, bytes) else len(payload.encode())
        if size > max_bytes:
            return None, Rejection(
                position,
                "too_large",
                f"event is {size} bytes; the limit is {max_bytes} bytes",
                _dump(payload)[:max_bytes],
            )
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return None, Rejection(position, "malformed_json", f"not valid JSON: {exc}", _dump(raw))
    if not isinstance(payload, dict):
        return None, Rejection(
            position,
            "invalid",
            f"a record must be a JSON object, got {type(payload).__name__}",
            _dump(payload),
        )
    return payload, None


def validate_chunk(
    records: list[Any],
    *,
    start: int = 1,
    received_at: datetime,
    max_event_bytes: int,
    max_future_skew: timedelta,
    check_size: bool = True,
) -> ChunkResult:
    """Validate a chunk; every record ends up either valid or rejected (never both, never lost).

    ``records`` are :class:`Record` or bare payloads; a bare payload's position is ``start``
    plus its index in the chunk.

    One pass per stage over the chunk, each as tight as Python allows: this loop runs once per
    event, so it is where ingestion spends most of its time (benchmarks/ingest.py).
    """
    result = ChunkResult()
    # (position, payload, field values); the values are None until the models have checked
    # a call the fast path left to them (its index is in ``slow``).
    parsed: list[tuple[int, dict[str, Any], dict[str, Any] | None]] = []
    slow: list[int] = []
    for index, item in enumerate(records, start):
        position, payload = item if type(item) is Record else (index, item)
        if type(payload) is dict:
            raw = False
        else:
            original = payload
            payload, rejection = _parse(position, original, max_event_bytes)
            if rejection is not None:
                result.rejected.append(rejection)
                continue
            assert payload is not None
            raw = isinstance(original, bytes | str)
        if check_size and not raw:
            size = len(orjson.dumps(payload, default=str))
            if size > max_event_bytes:
                result.rejected.append(
                    Rejection(
                        position,
                        "too_large",
                        f"event is {size} bytes; the limit is {max_event_bytes} bytes",
                        _dump(payload),
                    )
                )
                continue
        fields = fast_fields(payload)  # fused here: the payload is still in the CPU caches
        if fields is None:
            slow.append(len(parsed))
        parsed.append((position, payload, fields))
    if slow:
        _validate_slow(parsed, slow, result)

    received_utc = received_at.replace(tzinfo=UTC)
    received_naive = received_at.replace(tzinfo=None)
    try:  # a later timestamp is in the future (one comparison per record, not a subtraction)
        latest = received_naive + max_future_skew
    except OverflowError:  # a skew past year 9999 allows every timestamp
        latest = datetime.max
    schemas = _schemas()
    valid: list[ValidCall] = []
    append = valid.append
    groups: dict[str, list[int]] = {}
    for position, payload, checked in parsed:
        if checked is None:
            continue  # refused by the models
        call = checked
        when = call["timestamp"]
        if when is None:
            when = call["original_timestamp"]
        if when is None:
            timestamp = received_naive
        else:
            try:
                sent_at = call["sent_at"]
                if sent_at is not None:
                    # Segment's clock-skew correction: trust the server clock for the offset.
                    when = received_utc - (sent_at - when)
                # Naive UTC by arithmetic: datetime.replace(tzinfo=None) parses its keyword
                # arguments twice and cost about 1 us per event, this about 0.1 us.
                timestamp = _NAIVE_EPOCH + (when - _UTC_EPOCH)
            except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is past year 9999 in UTC
                result.rejected.append(
                    Rejection(
                        position,
                        "invalid",
                        "timestamp: out of range once converted to UTC (and corrected by "
                        "sentAt); send a time between the years 1 and 9999",
                        _dump(payload),
                        "timestamp",
                    )
                )
                continue
        if timestamp > latest:
            result.rejected.append(
                Rejection(
                    position,
                    "future_timestamp",
                    f"timestamp {timestamp.isoformat()}+00:00 is in the future (server time "
                    f"{received_utc.isoformat()}); fix the sender's clock or the data",
                    _dump(payload),
                    "timestamp",
                )
            )
            continue
        event = call.get("event")
        if event is not None and event in schemas:
            group = groups.get(event)
            if group is None:
                group = groups[event] = []
            group.append(len(valid))
        append(
            ValidCall(
                position,
                call,
                call["message_id"] or _message_id(payload),
                timestamp,
                payload,
            )
        )
    bad = _validate_properties(valid, groups, schemas, result) if groups else set()
    result.valid = [v for i, v in enumerate(valid) if i not in bad] if bad else valid
    return result


_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)

_ADAPTERS: dict[type[BaseModel], TypeAdapter[list[Any]]] = {}


def _list_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """One adapter per model, built on first use (a race builds it twice, harmlessly)."""
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return adapter


def _schemas() -> dict[str, type[BaseModel]]:
    """Documented event name -> properties model (the registry's ``event_schemas``)."""
    return dict(registry.event_schemas.items())


def _validate_properties(
    valid: list[ValidCall],
    groups: dict[str, list[int]],
    schemas: dict[str, type[BaseModel]],
    result: ChunkResult,
) -> set[int]:
    """Check the properties of documented events, one pydantic-core call per event name.

    Plain properties (only short strings in the model's declared fields) are accepted by the
    fast path without a model instance. Sets ``props`` of each call the model checked; returns
    the indices in ``valid`` that were rejected (their rejection is added to ``result``).
    """
    bad_indices: set[int] = set()
    for event, group in groups.items():
        rule = PLAIN_RULES.get(schemas[event])
        if rule is None:
            indices = group
        else:  # plain properties need no model instance (fastpath.plain_properties)
            indices = [
                i
                for i in group
                if not plain_properties(rule, valid[i].fields.get("properties") or {})
            ]
            if not indices:
                continue
        adapter = _list_adapter(schemas[event])
        values = [valid[i].fields.get("properties") or {} for i in indices]
        try:
            for i, props in zip(indices, adapter.validate_python(values), strict=True):
                valid[i].props = props
            continue
        except ValidationError as exc:
            bad = {int(e["loc"][0]) for e in exc.errors()}
        for pos, index in enumerate(indices):
            if pos not in bad:
                valid[index].props = schemas[event].model_validate(values[pos])
                continue
            try:
                schemas[event].model_validate(values[pos])
            except ValidationError as exc:
                where, message = _reason(exc.errors(), "properties")
                call = valid[index]
                bad_indices.add(index)
                result.rejected.append(
                    Rejection(
                        call.position,
                        "invalid",
                        f"{event}: {message}",
                        _dump(call.payload),
                        where,
                    )
                )
    return bad_indices


def _validate_slow(
    parsed: list[tuple[int, dict[str, Any], dict[str, Any] | None]],
    slow: list[int],
    result: ChunkResult,
) -> None:
    """Field values of the calls the fast path left to the models, set in ``parsed``.

    They go to pydantic-core in one call, and only failing ones are validated again, alone, to
    word their error; a refused call keeps None.
    """
    items = [(parsed[i][0], parsed[i][1]) for i in slow]
    for i, call in _validate_models(items, slow, result):
        position, payload, _ = parsed[i]
        parsed[i] = (position, payload, call)


def _validate_models(
    items: list[tuple[int, dict[str, Any]]], indices: list[int], result: ChunkResult
) -> list[tuple[int, dict[str, Any]]]:
    try:
        calls = calls_adapter.validate_python([p for _, p in items])
        return [(i, c.__dict__) for i, c in zip(indices, calls, strict=True)]
    except ValidationError as exc:
        bad = {int(e["loc"][0]) for e in exc.errors() if e["loc"]}
    good = [k for k in range(len(items)) if k not in bad]
    for k in sorted(bad):
        position, payload = items[k]
        try:
            calls_adapter.validate_python([payload])
        except ValidationError as exc:
            where, message = _reason(exc.errors(), skip=1)
            result.rejected.append(Rejection(position, "invalid", message, _dump(payload), where))
    if not good:
        return []
    calls = calls_adapter.validate_python([items[k][1] for k in good])
    return [(indices[k], c.__dict__) for k, c in zip(good, calls, strict=True)]


__all__ = ["ChunkResult", "Properties", "Record", "ValidCall", "validate_chunk"]

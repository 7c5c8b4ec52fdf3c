"""Reading hostile request bodies safely: size limits before parsing, gzip, JSON depth.

The tracking API and the webhooks read the raw body themselves (signatures are computed over
the exact bytes, and limits must hold before any JSON parser sees the data):

- the declared ``Content-Length`` is checked first, then the stream is read and abandoned as
  soon as it passes the limit, so an oversized body is never held in memory whole;
- ``Content-Encoding: gzip`` is inflated with the same limit on the inflated size, so a small
  compressed "bomb" cannot expand without bound;
- JSON is parsed by orjson (which itself refuses nesting past 1024), then its nesting depth is
  checked against ``max_json_depth`` with an iterative walk over containers only.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request

from siyu.errors import InvalidInput, PayloadTooLarge


def _too_large(size: int | str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is {size} bytes; the limit is {limit} bytes.",
        hint="Send at most 32 KB per event and 500 KB per batch; split larger batches.",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body (inflated if gzip), refusing more than ``limit`` bytes with 413."""
    declared = request.headers.get("content-length", "")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(declared, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(f"more than {limit}", limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise InvalidInput(
            f"Content-Encoding {encoding!r} is not supported.",
            hint="Send the body plain or gzip-compressed (Content-Encoding: gzip).",
            field="Content-Encoding",
        )
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(
            f"The body is not valid {encoding} data: {exc}",
            hint="Compress the whole JSON body with gzip, or drop the Content-Encoding header.",
            field="Content-Encoding",
        ) from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(f"more than {limit} (inflated)", limit)
    return out


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, ``{}`` is 1), visiting containers only."""
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: list[Any] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth = max(depth, level)
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return depth


def parse_json(body: bytes, max_depth: int) -> Any:
    """Parse JSON, refusing bodies that are not JSON or nest deeper than ``max_depth`` (400)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"The request body is not valid JSON: {exc}",
            hint="Send a JSON document (Content-Type: application/json).",
            field="body",
        ) from exc
    depth = json_depth(value)
    if depth > max_depth:
        raise InvalidInput(
            f"The JSON body nests {depth} levels deep; the limit is {max_depth}.",
            hint="Flatten deeply nested properties.",
            field="body",
        )
    return value

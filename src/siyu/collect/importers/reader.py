"""Streaming a delimited export file as Arrow record batches, every column as text.

Handles what real exports do: a byte-order mark (UTF-8, or UTF-16 which is transcoded),
quoted values spanning lines (order notes), tab- or comma-separated. The file is never read
whole: pyarrow's streaming reader yields batches of about ``block_size`` bytes.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Collection, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from siyu.errors import InvalidInput

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def file_hash(path: Path) -> str:
    """SHA-256 of the file's bytes: the identity of one export for checkpoints."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _encoding(path: Path) -> tuple[str, int]:
    with path.open("rb") as fh:
        head = fh.read(4)
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    return "utf-8", 0


def header(path: Path, delimiter: str) -> list[str]:
    """The column names of the first line (BOM removed, surrounding spaces stripped)."""
    encoding, skip = _encoding(path)
    with path.open("rb") as fh:
        fh.seek(skip)
        text = io.TextIOWrapper(fh, encoding=encoding, newline="")
        first = next(csv.reader(text, delimiter=delimiter), None)
    if not first:
        raise InvalidInput(f"{path} is empty.", hint="Export the file again.", field="file")
    return [c.strip() for c in first]


def batches(
    path: Path, delimiter: str, block_size: int = 4 << 20, columns: Collection[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Record batches of the data rows, all columns ``string`` (no type guessing).

    ``columns``: only these columns (those present) are converted: an export has dozens the
    importer never reads (addresses, notes), and converting them was half the reading time.
    """
    names = header(path, delimiter)
    if len(set(names)) != len(names):
        # Keep duplicated headers apart (Shopify repeats none; generic files might).
        seen: dict[str, int] = {}
        for i, n in enumerate(names):
            seen[n] = seen.get(n, 0) + 1
            if seen[n] > 1:
                names[i] = f"{n}.{seen[n] - 1}"
    encoding, _ = _encoding(path)
    wanted = [n for n in names if columns is None or n in columns]
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=names,
            skip_rows=1,
            block_size=block_size,
            encoding="utf8" if encoding == "utf-8" else encoding,
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter,
            newlines_in_values=True,
            quote_char='"' if delimiter != "\t" else False,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            include_columns=wanted or names,  # (an empty list would mean every column)
        ),
    )
    yield from reader

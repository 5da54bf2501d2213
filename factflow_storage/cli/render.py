"""One renderer for every command: JSON documents, NDJSON streams, streamed tables.

Everything is written as bytes to ``sys.stdout.buffer`` and flushed per line where a
stream is followed live, so a pipe into ``jq`` sees each line at once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

TABLE = "table"
JSON = "json"
FORMATS = (TABLE, JSON)


def json_bytes(value: Any) -> bytes:
    """The service's one JSON encoding, imported on first output so ``--help`` skips it."""
    from factflow_storage.service import json_bytes as encode

    return encode(value)


def _out():
    return sys.stdout.buffer


def emit_json(value: Any) -> None:
    out = _out()
    out.write(json_bytes(value) + b"\n")
    out.flush()


def emit_ndjson(rows: Iterable[Mapping[str, Any]], *, flush_each: bool = False) -> None:
    import orjson

    dumps, option = orjson.dumps, orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
    _write_all((dumps(row, option=option) for row in rows), flush_each)


def emit_lines(lines: Iterable[str], *, flush_each: bool = False) -> None:
    _write_all((line.encode("utf-8", "replace") + b"\n" for line in lines), flush_each)


# Rows per write when a stream is not followed live: one write per row costs more than
# encoding the row when stdout is unbuffered (PYTHONUNBUFFERED), or a pipe's reader wakes per row.
BATCH_ROWS = 256


def _write_all(chunks: Iterator[bytes], flush_each: bool) -> None:
    out = _out()
    write = out.write
    if flush_each:
        for chunk in chunks:
            write(chunk)
            out.flush()
        return
    batch: list[bytes] = []
    append, join = batch.append, b"".join
    for chunk in chunks:
        append(chunk)
        if len(batch) >= BATCH_ROWS:
            write(join(batch))
            batch.clear()
    write(join(batch))
    out.flush()


def counted(count: int, noun: str) -> str:
    """``1 object``, ``2 objects``: a count with its noun in the number it takes."""
    return f"{count} {noun if count == 1 else noun + 's'}"


def object_line(row: Mapping[str, Any]) -> str:
    """A listing row as a table line, in the spirit of ``aws s3 ls``."""
    return f"{row['last_modified']:<24} {row['size']:>12} {row['key']}"


def prefix_line(prefix: str) -> str:
    return f"{'':<24} {'PRE':>12} {prefix}"


def field_lines(record: Mapping[str, Any]) -> list[str]:
    """A flat record as ``name  value`` lines; nested values shown as compact JSON."""
    width = max((len(str(name)) for name in record), default=0)
    lines = []
    for name, value in record.items():
        shown = value if isinstance(value, str) else json_bytes(value).decode()
        lines.append(f"{str(name):<{width}}  {shown}")
    return lines


def table_lines(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """A small table whose column widths fit its rows (for short, bounded listings)."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    header = "  ".join(col.upper().ljust(widths[i]) for i, col in enumerate(columns)).rstrip()
    body = ["  ".join(r[i].ljust(widths[i]) for i in range(len(columns))).rstrip() for r in cells]
    return [header, *body]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json_bytes(value).decode()

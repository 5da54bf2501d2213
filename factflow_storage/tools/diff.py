"""``storage diff``: compare two executions key by key, for replay verification.

Both listings arrive in key order, so one merge pass pairs them with memory flat in the
number of objects. Objects of equal size are compared by the checksum in their metadata,
fetched a window at a time on a few threads.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from factflow_storage.keys import execution_prefix, validate_segment
from factflow_storage.metadata import is_json_type
from factflow_storage.tools.execution_check import require_execution

SAME, DIFFERS, ONLY_A, ONLY_B = "same", "differs", "only_a", "only_b"
STATUSES = (SAME, DIFFERS, ONLY_A, ONLY_B)
WORKERS = 8
WINDOW = WORKERS * 8
# A unified diff of larger objects says so instead of reading them whole.
MAX_CONTENT_DIFF = 1024 * 1024


def _pairs(service: Any, prefix_a: str, prefix_b: str) -> Iterator[tuple[str, Any, Any]]:
    """(relative key, info in A or None, info in B or None), in key order."""
    left, right = service.iter_objects(prefix_a), service.iter_objects(prefix_b)
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        rel_a = a.key[len(prefix_a):] if a is not None else None
        rel_b = b.key[len(prefix_b):] if b is not None else None
        # Both prefixes share the 'executions/' form, so relative keys merge in S3 order
        # when compared as UTF-8 bytes, exactly as the providers list them.
        if rel_b is None or (rel_a is not None and rel_a.encode() < rel_b.encode()):
            assert rel_a is not None
            yield rel_a, a, None
            a = next(left, None)
        elif rel_a is None or rel_b.encode() < rel_a.encode():
            yield rel_b, None, b
            b = next(right, None)
        else:
            yield rel_a, a, b
            a, b = next(left, None), next(right, None)


def _compare(service: Any, rel: str, a: Any, b: Any, content: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"key": rel, "status": SAME, "size_a": a.size if a else None,
                           "size_b": b.size if b else None}
    if a is None or b is None:
        row["status"] = ONLY_B if a is None else ONLY_A
        return row
    blob_a, blob_b = service.metadata(a.key), service.metadata(b.key)
    row["checksum_a"], row["checksum_b"] = blob_a.get("checksum"), blob_b.get("checksum")
    if a.size != b.size or row["checksum_a"] != row["checksum_b"] or row["checksum_a"] is None:
        row["status"] = DIFFERS
        if row["checksum_a"] is None and a.size == b.size:
            row["status"] = SAME if _read(service, a.key) == _read(service, b.key) else DIFFERS
        if content and row["status"] == DIFFERS:
            row["diff"] = content_diff(service, a, b, blob_a, blob_b)
    return row


def _read(service: Any, key: str) -> bytes:
    with service.open(key) as stream:
        return stream.read()


def _is_text(blob: dict[str, Any]) -> bool:
    kind = (blob.get("content_type") or "").split(";", 1)[0].strip().lower()
    return kind.startswith("text/") or is_json_type(kind) or kind == "application/x-ndjson"


def content_diff(service: Any, a: Any, b: Any, blob_a: dict[str, Any], blob_b: dict[str, Any]) -> str | None:
    """A unified diff of two text or JSON objects; None for binary or oversized ones."""
    if not (_is_text(blob_a) and _is_text(blob_b)) or max(a.size, b.size) > MAX_CONTENT_DIFF:
        return None
    try:
        text_a, text_b = _read(service, a.key).decode(), _read(service, b.key).decode()
    except UnicodeDecodeError:
        return None
    if is_json_type(blob_a.get("content_type")) and is_json_type(blob_b.get("content_type")):
        text_a, text_b = _json_lines(text_a), _json_lines(text_b)
    lines = difflib.unified_diff(text_a.splitlines(keepends=True), text_b.splitlines(keepends=True),
                                 fromfile=a.key, tofile=b.key)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _json_lines(text: str) -> str:
    """JSON laid out one member a line, keys sorted, so the diff points at what changed
    rather than at one long line; text that does not parse is compared as it is."""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    except orjson.JSONDecodeError:
        return text


def diff_executions(service: Any, execution_a: str, execution_b: str, *, route_id: str | None = None,
                    content: bool = False) -> Iterator[dict[str, Any]]:
    """Rows ``{"key", "status", "size_a", "size_b", ...}`` in key order, then one
    ``{"summary": {status: count}}``. Unknown executions fail here, before any row."""
    for execution_id in (execution_a, execution_b):
        require_execution(service, execution_id)
    prefix_a, prefix_b = execution_prefix(execution_a), execution_prefix(execution_b)
    if route_id:
        route = validate_segment(route_id, "route") + "/"
        prefix_a, prefix_b = prefix_a + route, prefix_b + route
    return _rows(service, prefix_a, prefix_b, route_id, content)


def _rows(service: Any, prefix_a: str, prefix_b: str, route_id: str | None,
          content: bool) -> Iterator[dict[str, Any]]:
    counts = dict.fromkeys(STATUSES, 0)
    route = route_id + "/" if route_id else ""
    with ThreadPoolExecutor(WORKERS) as pool:
        window: list = []
        for rel, a, b in _pairs(service, prefix_a, prefix_b):
            window.append(pool.submit(_compare, service, route + rel, a, b, content))
            if len(window) >= WINDOW:
                row = window.pop(0).result()
                counts[row["status"]] += 1
                yield row
        for future in window:
            row = future.result()
            counts[row["status"]] += 1
            yield row
    yield {"summary": counts}


def summary_line(counts: dict[str, int]) -> str:
    return (f"{counts[SAME]} same, {counts[DIFFERS]} differ, {counts[ONLY_A]} only in A, "
            f"{counts[ONLY_B]} only in B")

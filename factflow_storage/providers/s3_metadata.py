"""The metadata blob on S3: inline in user metadata when it fits, else a companion record.

Inline, the blob is one header, ``x-amz-meta-factflow``, holding base64 of its orjson
bytes: minio-py refuses non-ASCII header values, ``\\uXXXX`` escapes triple the size of
non-Latin text, and base64 keeps any JSON value intact at 4/3 of its size. Names are
lower-case without underscores because radosgw lowercases names and turns ``_`` into ``-``.

S3 caps user metadata at 2 KiB (radosgw does not, AWS does: we enforce it ourselves).
A larger blob, and the blob of every multipart upload (whose checksum is only known after
the last part), lives in the record ``metadata/<sha256 of key>/<write id>.json`` and the
object carries only ``x-amz-meta-factflow-record: <write id>``. A write id is unique per
write, so an object always points at the blob of its own version; the companion is in
place before the object becomes visible.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from factflow_storage.metadata import foreign_metadata
from factflow_storage.protocol import ObjectInfo

USER_METADATA_LIMIT = 2048
META_PREFIX = "x-amz-meta-"
BLOB_NAME = "factflow"
RECORD_NAME = "factflow-record"
BLOB_HEADER = META_PREFIX + BLOB_NAME
RECORD_HEADER = META_PREFIX + RECORD_NAME
COMPANION_DIR = "metadata/"


def new_write_id() -> str:
    """Unique, and sorting by time of writing (so cleanup can spare newer writes)."""
    return f"{time.time_ns():016x}-{os.urandom(6).hex()}"


def write_id_at(seconds: float) -> str:
    """The smallest write id of a write made at ``seconds`` (a horizon to compare ids with)."""
    return f"{int(seconds * 1e9):016x}"


def write_id_of(record: str) -> str:
    """The write id in a companion record's name."""
    return record.rsplit("/", 1)[-1].removesuffix(".json")


def companion_dir(key: str) -> str:
    return f"{COMPANION_DIR}{hashlib.sha256(key.encode('utf-8')).hexdigest()}/"


def companion_name(key: str, write_id: str) -> str:
    return f"{companion_dir(key)}{write_id}.json"


def encode_blob(blob: Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(blob))


def inline_value(encoded: bytes) -> str | None:
    """The header value for an inline blob, or None when it would break the 2 KiB cap."""
    value = base64.b64encode(encoded).decode("ascii")
    if len(BLOB_NAME) + len(value) > USER_METADATA_LIMIT:
        return None
    return value


def decode_inline(value: str) -> dict[str, Any] | None:
    try:
        blob = orjson.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None
    return blob if isinstance(blob, dict) else None


def decode_record(data: bytes) -> dict[str, Any] | None:
    try:
        blob = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return blob if isinstance(blob, dict) else None


def http_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    moment = parsedate_to_datetime(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """Other tools' ``x-amz-meta-*`` headers, names as the server returns them (lower-cased)."""
    return {name.lower()[len(META_PREFIX):]: value for name, value in headers.items()
            if name.lower().startswith(META_PREFIX)}


def foreign_blob(key: str, size: int, last_modified: datetime, headers: Mapping[str, str],
                 etag: str | None) -> dict[str, Any]:
    """What S3 knows of an object another tool wrote, plus that tool's user metadata."""
    blob = foreign_metadata(key, size, last_modified, content_type=headers.get("content-type"), etag=etag)
    extra = {name: value for name, value in user_metadata(headers).items() if name not in (BLOB_NAME, RECORD_NAME)}
    if extra:
        blob["user_metadata"] = extra
    return blob


def total_size(headers) -> int:
    content_range = headers.get("content-range")
    if content_range and "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(headers.get("content-length") or 0)


def response_info(key: str, headers, size: int) -> ObjectInfo:
    etag = (headers.get("etag") or "").strip('"') or None
    return ObjectInfo(key, size, http_time(headers.get("last-modified")), etag, headers.get("content-type"))

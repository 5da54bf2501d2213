"""The metadata blob on S3: inline in user metadata when it fits, else a companion record.

Inline, the blob is one header, ``x-amz-meta-factflow``, holding base64 of its orjson
bytes: minio-py refuses non-ASCII header values, ``\\uXXXX`` escapes triple the size of
non-Latin text, and base64 keeps any JSON value intact at 4/3 of its size. Names are
lower-case without underscores because radosgw lowercases names and turns ``_`` into ``-``.

S3 caps user metadata at 2 KiB (radosgw does not, AWS does: we enforce it ourselves).
A larger blob, and the blob of every multipart upload (whose checksum is only known after
the last part), lives in the record ``metadata/<sha256 of key>/<write id>.json`` and the
object carries only ``x-amz-meta-factflow-record: <sha256 of key>/<write id>`` (older
objects: the write id alone). A write id is unique per write, so an object always points
at the blob of its own version; the companion is in place before the object becomes
visible. An object another tool copied to a new key still points at its source's record.

Beside the blob, the well-known fields are plain headers other S3 tools show
(``aws s3api head-object``, ``rclone lsjson --metadata``, ``mc stat``):
``x-amz-meta-checksum``, ``-execution-id``, ``-route-id``, ``-stage``, ``-msg-id`` and
``-content-type``; a value that is not printable ASCII or is longer than
``READABLE_MAX`` is left out (the blob still has it). Headers are fixed before the bytes
are sent, so a multipart object has a ``checksum`` header only when its source is a
regular file, hashed before the upload (as rclone stores ``md5chksum``); a stream of
unknown length has none.

Read back, a blob is checked against the object (``as_stored``): a different key (a
copy), another length, or another ETag than the MD5 recorded at write time (the bytes
were replaced and the headers kept) is corrected or flagged, never served as truth.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson

from factflow_storage.metadata import describe_stored, foreign_metadata
from factflow_storage.protocol import ObjectInfo

USER_METADATA_LIMIT = 2048
META_PREFIX = "x-amz-meta-"
BLOB_NAME = "factflow"
RECORD_NAME = "factflow-record"
BLOB_HEADER = META_PREFIX + BLOB_NAME
RECORD_HEADER = META_PREFIX + RECORD_NAME
COMPANION_DIR = "metadata/"
READABLE_FIELDS = {"checksum": "checksum", "execution_id": "execution-id", "route_id": "route-id",
                   "stage": "stage", "msg_id": "msg-id", "content_type": "content-type"}
READABLE_MAX = 256
# The MD5 of a single-PUT object's bytes, kept in the blob (never shown): S3 reports it as
# the ETag, so a later read can tell whether the bytes are still those the blob describes.
MD5_FIELD = "_factflow_md5"


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
    """The record a ``factflow-record`` header value names (``write_id`` alone: under ``key``)."""
    if "/" in write_id:
        return f"{COMPANION_DIR}{write_id}.json"
    return f"{companion_dir(key)}{write_id}.json"


def record_pointer(key: str, write_id: str) -> str:
    return f"{companion_dir(key)[len(COMPANION_DIR):]}{write_id}"


def own_record(key: str, pointer: str) -> bool:
    """Whether a ``factflow-record`` value was written for ``key`` (not copied from elsewhere)."""
    return companion_name(key, pointer).startswith(companion_dir(key))


def encode_blob(blob: Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(blob))


def inline_value(encoded: bytes, room: int = USER_METADATA_LIMIT) -> str | None:
    """The header value for an inline blob, or None when it would not fit in ``room``."""
    value = base64.b64encode(encoded).decode("ascii")
    if len(BLOB_NAME) + len(value) > room:
        return None
    return value


def readable_headers(blob: Mapping[str, Any]) -> dict[str, str]:
    """The well-known fields as plain ``x-amz-meta-*`` headers."""
    headers = {}
    for field, name in READABLE_FIELDS.items():
        value = blob.get(field)
        if isinstance(value, str) and value.isascii() and value.isprintable() and 0 < len(value) <= READABLE_MAX:
            headers[META_PREFIX + name] = value
    return headers


def headers_size(headers: Mapping[str, str]) -> int:
    """What S3 counts toward its 2 KiB: names without ``x-amz-meta-``, and values."""
    return sum(len(name) - len(META_PREFIX) + len(value) for name, value in headers.items())


def object_headers(blob: Mapping[str, Any], md5_hex: str) -> tuple[dict[str, str], bytes | None]:
    """Headers of a single-PUT object, and the encoded blob when it must go to a companion
    record (then the caller adds the ``factflow-record`` pointer)."""
    headers = readable_headers(blob)
    encoded = encode_blob({**blob, MD5_FIELD: md5_hex})
    inline = inline_value(encoded, USER_METADATA_LIMIT - headers_size(headers))
    if inline is None:
        return headers, encoded
    headers[BLOB_HEADER] = inline
    return headers, None


def etag_is_md5(etag: str | None, headers: Mapping[str, str]) -> bool:
    """Whether S3 reports the MD5 of the bytes as the ETag: not for a multipart object
    ("...-N", also after a tool's multipart copy), nor under SSE-KMS or SSE-C encryption."""
    if not etag or len(etag) != 32 or "-" in etag:
        return False
    encryption = (headers.get("x-amz-server-side-encryption") or "").lower()
    return not encryption.startswith("aws:kms") and not headers.get("x-amz-server-side-encryption-customer-algorithm")


def as_stored(key: str, blob: Mapping[str, Any], info: ObjectInfo, headers: Mapping[str, str]) -> dict[str, Any]:
    """The blob read with an object, made true of that object (``metadata.describe_stored``)."""
    blob = dict(blob)
    md5 = blob.pop(MD5_FIELD, None)
    replaced = isinstance(md5, str) and etag_is_md5(info.etag, headers) and info.etag != md5
    return describe_stored(key, blob, size=info.size, bytes_replaced=replaced)


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
    from email.utils import parsedate_to_datetime  # here: the quick get (s3_quick) skips its import

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

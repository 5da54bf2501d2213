"""The metadata blob stored beside every object.

Computed fields always describe the stored bytes and replace whatever a writer passed;
everything else a writer passes (provenance, config hash, lineage, custom fields) is kept.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, BinaryIO

import orjson

from factflow_storage.errors import BadRequest, TooLarge
from factflow_storage.keys import parse_key

COMPUTED_FIELDS = ("key", "content_length", "checksum", "created_at")
PROVENANCE_FIELDS = ("execution_id", "route_id", "stage", "msg_id")
# The one limit on a metadata blob, as compact JSON, on every provider and write path. It
# keeps a blob inside one HTTP header (waitress reads at most 256 KiB of them), in a
# download's sidecar and in memory wherever listings carry metadata.
MAX_METADATA_BYTES = 64 * 1024
# Set on read when the bytes under a key are no longer those its checksum describes.
STALE_CHECKSUM = "stale_checksum"
# Set by ``fsck --verify --repair`` on an object whose bytes no longer match its checksum:
# reads refuse it until ``--accept-changed`` (``factflow_storage.providers.fs_quarantine``).
QUARANTINED = "quarantined"
COPIED_FROM = "copied_from"
CHANGE_CHECK = "change_check"
CHECK_ETAG = "size+etag"
CHECK_MTIME = "size+mtime"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
CHUNK_SIZE = 1024 * 1024

# Extensions pipelines write that mimetypes does not know on every host.
_EXTRA_TYPES = {".md": "text/markdown", ".jsonl": "application/x-ndjson", ".ndjson": "application/x-ndjson"}


def now_rfc3339() -> str:
    return format_time(datetime.now(timezone.utc))


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, the shape every output uses."""
    if moment.tzinfo is timezone.utc and 1971 <= moment.year < 2200:
        # A listing formats one time per object, and neighbours share their second: each
        # second is formatted once. In these years a float timestamp's error stays below a
        # microsecond, so int() is the exact second.
        second = int(moment.timestamp())
        text = _SECONDS.get(second)
        if text is None:
            if len(_SECONDS) >= _SECONDS_KEPT:
                _SECONDS.clear()
            text = _SECONDS[second] = moment.isoformat(timespec="seconds")[:19]
        return f"{text}.{moment.microsecond // 1000:03d}Z"
    moment = moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_SECONDS: dict[int, str] = {}
_SECONDS_KEPT = 4096


def guess_content_type(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    ext = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    return _EXTRA_TYPES.get(ext) or mimetypes.guess_type(name, strict=False)[0] or DEFAULT_CONTENT_TYPE


def is_json_type(content_type: str | None) -> bool:
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def check_user_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise BadRequest("metadata must be a JSON object")
    check_metadata_size(metadata)
    return dict(metadata)


def check_metadata_size(blob: Mapping[str, Any], key: str | None = None) -> None:
    """Refuse a blob over ``MAX_METADATA_BYTES`` (before any byte of the object moves)."""
    try:
        size = len(orjson.dumps(dict(blob)))
    except TypeError as err:
        raise BadRequest(f"metadata is not JSON: {err}") from None
    if size > MAX_METADATA_BYTES:
        what = f"metadata of {key!r}" if key else "metadata"
        raise TooLarge(f"{what} is {size} bytes as JSON, over the limit of {MAX_METADATA_BYTES} bytes (64 KiB)")


def provenance(key: str) -> dict[str, str]:
    """The provenance fields the key convention gives (none for other keys)."""
    parts = parse_key(key)
    if parts is None:
        return {}
    return {field: value for field in PROVENANCE_FIELDS if (value := getattr(parts, field)) is not None}


def build_metadata(
    key: str,
    user_metadata: Mapping[str, Any] | None,
    *,
    content_type: str | None,
    size: int,
    sha256_hex: str,
) -> dict[str, Any]:
    """The stored blob: the writer's fields, provenance from the key, computed fields."""
    blob = check_user_metadata(user_metadata)
    for field, value in provenance(key).items():
        blob.setdefault(field, value)
    blob["content_type"] = content_type or blob.get("content_type") or guess_content_type(key)
    blob["key"] = key
    blob["content_length"] = size
    blob["checksum"] = f"sha256:{sha256_hex}"
    blob["created_at"] = now_rfc3339()
    check_metadata_size(blob, key)
    return blob


def describe_stored(key: str, blob: Mapping[str, Any], *, size: int, bytes_replaced: bool = False) -> dict[str, Any]:
    """A blob read back, with its computed fields made true of the object under ``key``.

    Another tool may have copied the object (and its blob) from another key, or replaced
    its bytes and kept the blob: the key and the provenance parsed from it come from
    ``key``, the length from the object, and a checksum the bytes no longer match is moved
    to ``stale_checksum`` rather than served. Provenance a writer set explicitly is kept.
    """
    blob = dict(blob)
    recorded = blob.get("key")
    if isinstance(recorded, str) and recorded != key:
        derived = provenance(recorded)
        for field, value in derived.items():
            if blob.get(field) == value:
                del blob[field]
        for field, value in provenance(key).items():
            blob.setdefault(field, value)
        blob[COPIED_FROM] = recorded
    blob["key"] = key
    if blob.get("content_length") != size or bytes_replaced:
        if "checksum" in blob:
            blob[STALE_CHECKSUM] = blob.pop("checksum")
        blob["content_length"] = size
    return blob


def check_blob_size(key: str, encoded: bytes) -> bytes:
    """The encoded blob, when within the limit (readers bound sidecar reads by it)."""
    if len(encoded) > MAX_METADATA_BYTES:
        raise TooLarge(f"the metadata of {key!r} is {len(encoded)} bytes encoded, more than the "
                       f"{MAX_METADATA_BYTES} bytes a metadata blob may hold")
    return encoded


class HashingReader:
    """Wraps a source so size and sha256 are computed while the bytes stream past."""

    def __init__(self, source: bytes | bytearray | memoryview | BinaryIO):
        self._source = source
        self._digest = hashlib.sha256()
        self.size = 0

    def chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        if isinstance(self._source, (bytes, bytearray, memoryview)):
            data = bytes(self._source)
            self._digest.update(data)
            self.size = len(data)
            yield data
            return
        while True:
            chunk = self._source.read(chunk_size)
            if not chunk:
                return
            self._digest.update(chunk)
            self.size += len(chunk)
            yield chunk

    def read(self, size: int = -1) -> bytes:
        """File-like read, for clients (minio) that pull from a stream."""
        if isinstance(self._source, (bytes, bytearray, memoryview)):
            self._source = io.BytesIO(self._source)
        chunk = self._source.read(size if size is not None and size >= 0 else -1)
        self._digest.update(chunk)
        self.size += len(chunk)
        return chunk

    @property
    def sha256_hex(self) -> str:
        return self._digest.hexdigest()


def foreign_metadata(key: str, size: int, last_modified: datetime, *,
                     content_type: str | None = None, etag: str | None = None) -> dict[str, Any]:
    """What storage itself knows of an object another tool wrote (no factflow blob).

    Without a sha256, a download tells a changed object by its size and ETag (else its
    modification time), as rclone does; ``change_check`` says which.
    """
    blob: dict[str, Any] = {
        "key": key,
        **provenance(key),
        "content_type": content_type or guess_content_type(key),
        "content_length": size,
        "created_at": format_time(last_modified),
    }
    if etag:
        blob["etag"] = etag
    blob[CHANGE_CHECK] = CHECK_ETAG if etag else CHECK_MTIME
    return blob

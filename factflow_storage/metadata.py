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

from factflow_storage.errors import BadRequest
from factflow_storage.keys import parse_key

COMPUTED_FIELDS = ("key", "content_length", "checksum", "created_at")
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
    return dict(metadata)


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
    parts = parse_key(key)
    if parts is not None:
        provenance = {
            "execution_id": parts.execution_id,
            "route_id": parts.route_id,
            "stage": parts.stage,
            "msg_id": parts.msg_id,
        }
        for field, value in provenance.items():
            if value is not None:
                blob.setdefault(field, value)
    blob["content_type"] = content_type or blob.get("content_type") or guess_content_type(key)
    blob["key"] = key
    blob["content_length"] = size
    blob["checksum"] = f"sha256:{sha256_hex}"
    blob["created_at"] = now_rfc3339()
    return blob


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
    """What storage itself knows of an object another tool wrote (no factflow blob)."""
    blob: dict[str, Any] = {
        "key": key,
        "content_type": content_type or guess_content_type(key),
        "content_length": size,
        "created_at": format_time(last_modified),
    }
    if etag:
        blob["etag"] = etag
    return blob

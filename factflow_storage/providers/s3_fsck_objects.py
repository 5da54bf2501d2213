"""``fsck`` over S3 objects: each object must carry a blob that reads.

An object naming a companion record that is gone (``missing_record``) cannot be read at
all. It still carries its readable ``x-amz-meta-*`` headers, its content type and its
bytes, so the repair rebuilds a truthful blob from those (provenance from the key, a fresh
sha256 of the bytes) and stores it under the very record name the object points at. The
object is not rewritten: a record name holds one write id, unique to the version that
names it, so the rebuilt record can only ever describe those bytes, and the write path's
invariant (an object's record exists whenever the object is visible) holds again. The
bytes are read with the pointer taken from the same GET response, so a concurrent write
that replaced the object meanwhile only leaves an unreferenced record (removed later).

An object without any factflow metadata (``foreign_object``: written by another tool, or
its headers were replaced) still reads, with what S3 knows of it: a bucket shared with
other tools holds such objects by design, so it is counted, left as it is (only its
writer knows the fields it should carry) and not a problem for the exit code.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

from factflow_storage.errors import NotFound, StorageError
from factflow_storage.fsck import FOREIGN_OBJECT, Finding
from factflow_storage.metadata import build_metadata
from factflow_storage.providers import s3_metadata as meta

_CHUNK = 1 << 20


def run(provider: Any, prefix: str, *, repair: bool, grace: float) -> Iterator[Finding]:
    horizon = meta.write_id_at(time.time() - grace)
    for info in provider.list(prefix):
        key = info.key
        try:
            headers = provider._call(f"object {key!r}", provider._client.stat_object, bucket_name=provider.bucket,
                                     object_name=provider._name(key)).metadata or {}
        except NotFound:
            continue  # deleted since the listing
        inline = headers.get(meta.BLOB_HEADER)
        if inline is not None and meta.decode_inline(inline) is not None:
            continue
        pointer = headers.get(meta.RECORD_HEADER)
        if not pointer:
            if inline is None:
                yield Finding(FOREIGN_OBJECT, key, "written by another tool: read with metadata computed from the object")
            continue
        if not meta.own_record(key, pointer) or meta.write_id_of(pointer) >= horizon:
            continue  # a copy points at its source's record; a young record may still be on its way
        if provider.get_record(meta.companion_name(key, pointer)) is not None:
            continue
        repaired = repair and _rebuild(provider, key)
        yield Finding("missing_record", key, f"the object names metadata record {pointer}, which is gone"
                      + ("; rebuilt from the object's headers and bytes" if repaired else ""), repaired)


def _rebuild(provider: Any, key: str) -> bool:
    """Store a blob describing the object's current bytes under the record it names."""
    name = provider._name(key)
    try:
        response = provider._call(f"object {key!r}", provider._client.get_object, bucket_name=provider.bucket,
                                  object_name=name)
    except NotFound:
        return False
    try:
        headers = {name.lower(): value for name, value in response.headers.items()}
        pointer = headers.get(meta.RECORD_HEADER)
        if not pointer or not meta.own_record(key, pointer):
            return False  # replaced meanwhile by a version that needs no rebuilding
        sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
        for chunk in response.stream(_CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    finally:
        response.close()
        response.release_conn()
    known = {field: headers[meta.META_PREFIX + header] for field, header in meta.READABLE_FIELDS.items()
             if meta.META_PREFIX + header in headers and field not in ("checksum", "content_type")}
    content_type = headers.get(meta.META_PREFIX + "content-type") or headers.get("content-type")
    blob = build_metadata(key, known, content_type=content_type, size=size, sha256_hex=sha256.hexdigest())
    etag = (headers.get("etag") or "").strip('"')
    if meta.etag_is_md5(etag, headers) and etag == md5.hexdigest():
        blob[meta.MD5_FIELD] = etag  # lets a later read tell replaced bytes, as a fresh write does
    try:
        provider.put_record(meta.companion_name(key, pointer), meta.encode_blob(blob))
    except StorageError:
        return False
    return True

"""``fsck`` for the S3 provider: stale multipart uploads and companion records nobody names.

Both are what a killed writer leaves: an upload it never completed or aborted, and a
companion record whose object never appeared (or was replaced while a concurrent write
kept the record alive). Only what is older than the grace period is touched, and a record
is deleted only when a fresh HEAD shows its object names another one, so fsck is safe
beside live writers (they hold records younger than the grace period).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from factflow_storage.errors import StorageError
from factflow_storage.fsck import UNLISTED, Finding
from factflow_storage.keys import RESERVED_PREFIX
from factflow_storage.providers import s3_client
from factflow_storage.providers import s3_fsck_objects
from factflow_storage.providers.s3_listing import listable
from factflow_storage.providers import s3_metadata as meta


def run(provider: Any, prefix: str, *, repair: bool, grace: float) -> Iterator[Finding]:
    yield from _uploads(provider, prefix, repair, grace)
    yield from _records(provider, prefix, repair, grace)
    yield from s3_fsck_objects.run(provider, prefix, repair=repair, grace=grace)
    yield from _unlisted(provider, prefix)


def _unlisted(provider: Any, prefix: str) -> Iterator[Finding]:
    """Names other tools wrote that are not valid keys: every listing leaves them out."""
    reserved = provider.prefix + RESERVED_PREFIX
    for found in provider._listing(provider.prefix + prefix, None):
        if found.name.startswith(reserved):
            continue
        name = found.name[len(provider.prefix):]
        if not listable(name):
            yield Finding(UNLISTED, name, "a name that is not a valid key: no listing shows it "
                          "(execution delete removes it with its execution)")


def _uploads(provider: Any, prefix: str, repair: bool, grace: float) -> Iterator[Finding]:
    horizon = datetime.fromtimestamp(time.time() - grace, timezone.utc)
    client, bucket = provider._client, provider.bucket
    for upload in _translated(provider, s3_client.list_incomplete_uploads(client, bucket, provider.prefix + prefix)):
        if upload.initiated is not None and upload.initiated > horizon:
            continue  # a live upload, or too young to tell
        name = upload.name[len(provider.prefix):]
        size = provider._call(f"upload of {name!r}", s3_client.uploaded_bytes, client=client, bucket=bucket,
                              name=upload.name, upload_id=upload.upload_id)
        repaired = False
        if repair:
            provider._call(f"upload of {name!r}", s3_client.abort_multipart_upload, client=client, bucket=bucket,
                           name=upload.name, upload_id=upload.upload_id)
            repaired = True
        yield Finding("incomplete_upload", name, f"a multipart upload begun {upload.initiated} and never "
                      f"completed ({size} bytes in parts)", repaired, size if repaired else 0)


def _translated(provider: Any, rows: Iterator[Any]) -> Iterator[Any]:
    """``rows`` streamed, a failure of the listing coming out as the project's error."""
    from factflow_storage.providers.s3_errors import TRANSLATED

    try:
        yield from rows
    except TRANSLATED as err:
        raise provider._errors.translate(err, "multipart uploads") from err


def _records(provider: Any, prefix: str, repair: bool, grace: float) -> Iterator[Finding]:
    base = provider.prefix + RESERVED_PREFIX
    horizon = meta.write_id_at(time.time() - grace)
    listing = provider._listing(base + meta.COMPANION_DIR, None)
    # Records of one key share a directory and are listed together: one group in memory.
    for _, group in itertools.groupby(listing, key=lambda found: found.name.rsplit("/", 1)[0]):
        records = [(found.name[len(base):], found.size) for found in group]
        old = [(name, size) for name, size in records if meta.write_id_of(name) < horizon]
        if not old:
            continue
        key = _key_of(provider, records)
        if key is None or not key.startswith(prefix):
            continue
        current = provider._current_write_id(key, provider._name(key))
        for name, size in old:
            if meta.write_id_of(name) == current:
                continue
            repaired = False
            if repair:
                provider.delete_record(name)
                repaired = True
            yield Finding("unreferenced_record", f"{RESERVED_PREFIX}{name}",
                          f"a metadata record of {key!r} its object does not name", repaired, size if repaired else 0)


def _key_of(provider: Any, records: list[tuple[str, int]]) -> str | None:
    """The key a group of records belongs to, from the newest readable one."""
    for name, _ in reversed(records):
        try:
            raw = provider.get_record(name)
        except StorageError:
            continue
        blob = meta.decode_record(raw) if raw is not None else None
        if blob and isinstance(blob.get("key"), str):
            return blob["key"]
    return None

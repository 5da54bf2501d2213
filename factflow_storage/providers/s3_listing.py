"""Listing helpers: which names are shown, and objects and prefixes in one S3 order."""

from __future__ import annotations

from datetime import datetime

from factflow_storage.errors import InvalidKey
from factflow_storage.keys import RESERVED_PREFIX, validate_key, validate_prefix
from factflow_storage.protocol import ObjectInfo
from factflow_storage.providers.s3_metadata import http_time

# Past every record name this project writes (all ASCII), so a listing can jump over them.
AFTER_RECORDS = RESERVED_PREFIX + "\U0010ffff"


def listable(key: str, *, prefix: bool = False) -> bool:
    """Names other tools wrote that are not valid keys here cannot be read back: leave them out."""
    try:
        (validate_prefix if prefix else validate_key)(key)
    except InvalidKey:
        return False
    return True


def in_s3_order(entries, page_size: int = 1000):
    """Objects and common prefixes merged into one S3-ordered stream.

    minio-py yields each page's objects, then that page's prefixes. An object after a
    prefix starts a new page, and a page holds at most ``page_size`` entries, so without
    a prefix in sight all but the last ``page_size`` buffered objects are safe to yield.
    """
    buffer: list = []
    seen_prefix = False
    for entry in entries:
        if seen_prefix and not entry.is_dir:
            buffer.sort(key=lambda found: found.object_name.encode("utf-8"))
            yield from buffer
            buffer, seen_prefix = [], False
        buffer.append(entry)
        if entry.is_dir:
            seen_prefix = True
        elif len(buffer) > page_size:
            yield from buffer[:-page_size]
            del buffer[:-page_size]
    buffer.sort(key=lambda found: found.object_name.encode("utf-8"))
    yield from buffer


def listed_info(key: str, found) -> ObjectInfo:
    """A listing entry as an ObjectInfo (S3 listings carry no content type)."""
    return ObjectInfo(key, found.size, whole_seconds(found.last_modified), (found.etag or "").strip('"') or None)


def whole_seconds(moment: datetime | None) -> datetime:
    # HEAD and GET give Last-Modified in whole seconds; listings in milliseconds. Agree on seconds.
    return moment.replace(microsecond=0) if moment else http_time(None)

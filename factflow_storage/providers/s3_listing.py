"""ListObjectsV2, page by page: which names are shown, in one S3 order, fetched ahead.

minio-py's ``list_objects`` spends most of a large listing in its XML parsing (an
ElementPath search per field, ``strptime`` per date) and yields each page's objects
before that page's prefixes. Here a page is parsed in one pass over its elements, its
objects and prefixes are merged in order, and the next page's request is in flight
while the caller consumes the current one. The request itself is minio-py's (signing,
retries, error parsing); only the parsing is ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import NamedTuple
from urllib.parse import unquote_plus
from xml.etree import ElementTree

from factflow_storage.errors import InvalidKey
from factflow_storage.keys import RESERVED_PREFIX, validate_key, validate_prefix
from factflow_storage.protocol import ObjectInfo
from factflow_storage.providers import s3_client

# Past every record name this project writes (all ASCII), so a listing can jump over them.
AFTER_RECORDS = RESERVED_PREFIX + "\U0010ffff"
PAGE_KEYS = 1000


class Listed(NamedTuple):
    """One row of a listing page: an object, or a common prefix (``is_dir``)."""

    name: str
    size: int = 0
    last_modified: datetime | None = None
    etag: str | None = None
    is_dir: bool = False


def list_entries(client, bucket: str, prefix: str, *, start_after: str | None = None,
                 delimiter: str | None = None, first_page: int | None = None) -> Iterator[Listed]:
    """Every entry under ``prefix`` in S3 order, one request per page of 1000.

    With ``first_page`` (the caller expects to stop within that many entries), the first
    request asks for that many and the next is sent only if the caller reads past them:
    S3 answers in time proportional to the keys it returns, so a page of 50 out of 5,000
    would otherwise cost two pages of 1000.
    """

    def fetch(token: str | None, keys: int = PAGE_KEYS) -> bytes:
        query = {"list-type": "2", "prefix": prefix, "delimiter": delimiter or "", "max-keys": str(keys),
                 "encoding-type": "url"}
        if token:
            query["continuation-token"] = token
        elif start_after:
            query["start-after"] = start_after
        return s3_client.signed_get(client, bucket, query).data

    if first_page is not None and 0 < first_page < PAGE_KEYS:
        entries, token = parse_page(fetch(None, first_page))
        if token:
            yield from entries
            entries, token = parse_page(fetch(token))
    else:
        entries, token = parse_page(fetch(None))
    if not token:
        yield from entries
        return
    with ThreadPoolExecutor(1, thread_name_prefix="s3-list") as pool:
        while True:
            ahead: Future | None = pool.submit(fetch, token) if token else None
            try:
                yield from entries
            except GeneratorExit:
                if ahead is not None:
                    ahead.cancel()  # a request already under way finishes; its page is dropped
                raise
            if ahead is None:
                return
            entries, token = parse_page(ahead.result())


def parse_page(data: bytes) -> tuple[list[Listed], str | None]:
    """A ListObjectsV2 page: its entries in S3 order, and the token of the next page."""
    root = ElementTree.fromstring(data)
    objects: list[tuple] = []
    prefixes: list[str] = []
    truncated, token, url_encoded = False, None, False
    seconds: dict[str, datetime] = {}
    for child in root:
        tag = child.tag.rpartition("}")[2]
        if tag == "Contents":
            name, size, modified, etag = "", 0, None, None
            for field in child:
                field_tag = field.tag.rpartition("}")[2]
                if field_tag == "Key":
                    name = field.text or ""
                elif field_tag == "Size":
                    size = int(field.text or 0)
                elif field_tag == "LastModified" and field.text:
                    # Whole seconds, as HEAD and GET give them, so a listing and a stat agree.
                    stamp = field.text[:19]
                    modified = seconds.get(stamp)
                    if modified is None:
                        modified = seconds[stamp] = datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc)
                elif field_tag == "ETag" and field.text:
                    etag = field.text.strip('"') or None
            objects.append((name, size, modified, etag))
        elif tag == "CommonPrefixes":
            for field in child:
                if field.tag.rpartition("}")[2] == "Prefix":
                    prefixes.append(field.text or "")
        elif tag == "IsTruncated":
            truncated = (child.text or "").lower() == "true"
        elif tag == "NextContinuationToken":
            token = child.text
        elif tag == "EncodingType":
            url_encoded = child.text == "url"
    decode = _url_decode if url_encoded else _as_is
    entries = [Listed(decode(name), size, modified, etag) for name, size, modified, etag in objects]
    if prefixes:
        entries += [Listed(decode(name), is_dir=True) for name in prefixes]
        entries.sort(key=lambda entry: entry.name.encode("utf-8"))
    return entries, token if truncated else None


def _url_decode(text: str) -> str:
    return unquote_plus(text) if "%" in text or "+" in text else text


def _as_is(text: str) -> str:
    return text


def listable(key: str, *, prefix: bool = False) -> bool:
    """Names other tools wrote that are not valid keys here cannot be read back: leave them out."""
    try:
        (validate_prefix if prefix else validate_key)(key)
    except InvalidKey:
        return False
    return True


def listed_info(key: str, entry: Listed) -> ObjectInfo:
    """A listing entry as an ObjectInfo (S3 listings carry no content type)."""
    return ObjectInfo(key, entry.size, entry.last_modified or datetime.now(timezone.utc), entry.etag)

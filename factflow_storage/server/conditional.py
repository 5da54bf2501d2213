"""RFC 9110 conditional requests (section 13) on a representation with an ETag and a
Last-Modified date: which precondition decides, and whether a Range still applies.

The order is the RFC's (13.2.2): If-Match, else If-Unmodified-Since (412); then
If-None-Match, else If-Modified-Since (304 for GET/HEAD, 412 otherwise); then If-Range.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from factflow_storage.protocol import WriteCondition

NOT_MODIFIED = 304
PRECONDITION_FAILED = 412


def _tags(header: str) -> list[tuple[bool, str]]:
    """``(weak, opaque)`` of each entity tag in a list header; unparseable items dropped."""
    tags = []
    for item in header.split(","):
        item = item.strip()
        weak = item.startswith("W/")
        item = item[2:] if weak else item
        if len(item) >= 2 and item[0] == item[-1] == '"':
            tags.append((weak, item[1:-1]))
    return tags


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # an invalid date makes the condition not apply (RFC 9110 13.1.3)
    return moment if moment is not None and moment.tzinfo is not None else None


def _whole_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _strong_match(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(not weak and tag == etag for weak, tag in _tags(header))


def _weak_match(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(tag == etag for _, tag in _tags(header))


def etag_matches(header: str, etag: str, *, strong: bool = False) -> bool:
    """Whether a list header (If-Match, If-None-Match) names the quoted ``etag``."""
    return (_strong_match if strong else _weak_match)(header, etag.strip('"'))


def write_condition(headers: Mapping[str, str]) -> WriteCondition | None:
    """The preconditions of a PUT, for the provider to check atomically with the write.

    If-Match compares strongly (a weak tag never matches), If-None-Match weakly; a header
    that names no valid tag matches nothing. If-(Un)Modified-Since are not taken on writes:
    a date cannot tell apart two versions written within one second.
    """
    if_match = headers.get("HTTP_IF_MATCH")
    if_none_match = headers.get("HTTP_IF_NONE_MATCH")
    if if_match is None and if_none_match is None:
        return None
    return WriteCondition(
        if_match=None if if_match is None else
        ("*",) if if_match.strip() == "*" else tuple(tag for weak, tag in _tags(if_match) if not weak),
        if_none_match=None if if_none_match is None else
        ("*",) if if_none_match.strip() == "*" else tuple(tag for _, tag in _tags(if_none_match)))


def evaluate(headers: Mapping[str, str], method: str, etag: str, last_modified: datetime) -> int | None:
    """The status a precondition forces (304 or 412), or None to go on.

    ``headers`` is a WSGI environ (``HTTP_IF_MATCH``...); ``etag`` is quoted.
    """
    opaque = etag.strip('"')
    modified = _whole_seconds(last_modified)
    if_match = headers.get("HTTP_IF_MATCH")
    if if_match is not None:
        if not _strong_match(if_match, opaque):
            return PRECONDITION_FAILED
    else:
        since = _date(headers.get("HTTP_IF_UNMODIFIED_SINCE"))
        if since is not None and modified > _whole_seconds(since):
            return PRECONDITION_FAILED
    if_none_match = headers.get("HTTP_IF_NONE_MATCH")
    safe = method in ("GET", "HEAD")
    if if_none_match is not None:
        if _weak_match(if_none_match, opaque):
            return NOT_MODIFIED if safe else PRECONDITION_FAILED
    elif safe:
        since = _date(headers.get("HTTP_IF_MODIFIED_SINCE"))
        if since is not None and modified <= _whole_seconds(since):
            return NOT_MODIFIED
    return None


def range_applies(headers: Mapping[str, str], etag: str) -> bool:
    """Whether a Range header may be honoured: If-Range, when sent, must name the
    current representation exactly, else the whole representation is sent so a resumed
    download never splices two versions.

    Only a strong ETag can name it. A date is a strong validator only when the server
    has "reliably determined that the representation was unchanged during the second
    covered by" it (RFC 9110 8.8.2.2, 13.1.5 step 2): an object can be replaced several
    times within one second and neither provider keeps the times of earlier versions,
    so a date that equals Last-Modified may still be that of an earlier version. A date
    is therefore always weak here, and the answer is the whole representation (every
    answer carries a strong ETag to resume with).
    """
    if_range = headers.get("HTTP_IF_RANGE")
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith('"') or if_range.startswith("W/"):
        tags = _tags(if_range)
        return len(tags) == 1 and not tags[0][0] and tags[0][1] == etag.strip('"')
    return False

"""The execution index: executions newest first, and what a list row shows, from listings.

Every execution has one entry, an empty record whose name is the row:

    _factflow/execution-index/<inverted start>_<execution id>/<status>,<finished>,<objects>

``<inverted start>`` is ``INVERT`` minus the start in microseconds since the epoch, 16
digits, so a listing (S3's byte order, the filesystem provider's sorted names) yields the
newest execution first, ties by id; ``<finished>`` is microseconds too, ``<objects>`` the
count, either ``-`` when unknown. The '/' after the id keeps one execution's entries
together whatever characters its id holds ('/' is the one it cannot hold). So a page of
the list, and its status and start-time filters, cost LIST requests only.

Writers keep it (``Store.write_execution``, ``executions.delete_record``): the
new entry is put before the record is written and the old one deleted after, so a writer
killed in between leaves two entries for the execution, never none; a reader that meets
two reads the record to settle them, and ``fsck --repair`` drops the stale one.

The marker record ``execution-index.json`` says the index covers every record. A store
written before the index has none: its list is read by a scan of every record
(``executions.iter_rows``) until ``fsck --repair`` builds the index; the first writer of
an empty store writes the marker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote

import orjson

from factflow_storage.metadata import format_time

PREFIX = "execution-index/"
MARKER = "execution-index.json"
RECORDS = "executions/"
INVERT = 9_999_999_999_999_999
LONG_ID = 160
HASHED = "="
_READY = "_execution_index_ready"  # on the provider: the marker was seen (it is never removed)
_CHECKED = "_execution_index_checked"  # on the provider: this writer already looked for it


def micros(value: Any) -> int | None:
    """An RFC 3339 time as microseconds since the epoch; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return min(max((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds, 0), INVERT)


def time_text(value: int | None) -> str | None:
    if value is None:
        return None
    return format_time(datetime.fromtimestamp(value // 1_000_000, timezone.utc).replace(
        microsecond=value % 1_000_000))


def canonical_time(value: Any) -> str | None:
    """A record's time as a list row shows it, the same from the index and from a scan."""
    return time_text(micros(value))


def id_part(execution_id: str) -> str:
    """The id as an entry names it: a long one by its hash (the entry then holds the id),
    so a name stays within a filesystem's 255 bytes and S3's 1,024."""
    if len(execution_id.encode("utf-8", "surrogatepass")) <= LONG_ID:
        return execution_id
    return HASHED + hashlib.sha256(execution_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def entry_body(execution_id: str) -> bytes:
    """What an entry holds: nothing, or the long id its name hashes."""
    return b"" if id_part(execution_id) == execution_id else execution_id.encode("utf-8", "surrogatepass")


def position(execution_id: str, started_at: Any) -> str:
    """Where an execution sorts: every entry name of it starts with this."""
    started = micros(started_at)
    return f"{INVERT - (started or 0):016d}_{id_part(execution_id)}/"


def after_position(place: str) -> str:
    """The smallest name past every entry at ``place`` (which ends in '/'; '0' follows '/')."""
    return place[:-1] + "0"


def before_start(moment: int) -> str:
    """The smallest name past every entry started at or after ``moment`` ('`' follows '_')."""
    return f"{INVERT - moment:016d}`"


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """A list row: what the index holds of a record."""
    count = record.get("object_count")
    return {"execution_id": record.get("execution_id"), "status": record.get("status"),
            "started_at": canonical_time(record.get("started_at")),
            "finished_at": canonical_time(record.get("finished_at")),
            "object_count": count if isinstance(count, int) and not isinstance(count, bool) else None}


def entry_name(execution_id: str, record: Mapping[str, Any]) -> str:
    finished = micros(record.get("finished_at"))
    count = summary(record)["object_count"]
    leaf = ",".join((quote(str(record.get("status") or ""), safe=""), "-" if finished is None else str(finished),
                     "-" if count is None else str(count)))
    return PREFIX + position(execution_id, record.get("started_at")) + leaf


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    position: str
    execution_id: str  # as the name has it: ``id_part`` of the id
    row: dict[str, Any]

    @property
    def hashed(self) -> bool:
        """Named by the hash of a long id: the entry's content is the id."""
        return self.execution_id.startswith(HASHED) and len(self.execution_id) == 41

    @property
    def started(self) -> int:
        return INVERT - int(self.position[:16])


def parse(name: str) -> Entry | None:
    """An entry from its name (as ``list_records`` yields it); None for anything else."""
    rest = name[len(PREFIX):] if name.startswith(PREFIX) else ""
    place, slash, leaf = rest.rpartition("/")
    parts = leaf.split(",")
    if not slash or len(place) < 18 or place[16] != "_" or not place[:16].isdigit() or len(parts) != 3:
        return None
    try:
        finished = None if parts[1] == "-" else int(parts[1])
        count = None if parts[2] == "-" else int(parts[2])
    except ValueError:
        return None
    started = INVERT - int(place[:16])
    return Entry(name, place + "/", place[17:], {
        "execution_id": place[17:], "status": unquote(parts[0]) or None,
        "started_at": time_text(started) if started else None,
        "finished_at": time_text(finished), "object_count": count})


# -- writers -------------------------------------------------------------------


def entries_at(provider, execution_id: str, started_at: Any) -> list[str]:
    return list(provider.list_records(PREFIX + position(execution_id, started_at)))


def entries_of(provider, execution_id: str) -> list[str]:
    """Every entry of an execution whose start is unknown: a walk of the whole index."""
    named = id_part(execution_id)
    return [name for name in provider.list_records(PREFIX)
            if (entry := parse(name)) is not None and entry.execution_id == named]


def before_write(provider, execution_id: str, record: Mapping[str, Any]) -> list[str]:
    """Put the entry of ``record`` (about to be written); returns the entries to drop
    once it is. The first writer of an empty store marks the index complete."""
    _mark_if_first(provider, execution_id)
    name = entry_name(execution_id, record)
    found = entries_at(provider, execution_id, record.get("started_at"))
    if name not in found:
        provider.put_record(name, entry_body(execution_id))
    return [other for other in found if other != name]


def after_write(provider, stale: list[str]) -> None:
    if stale:
        provider.delete_records(stale)


def forget(provider, execution_id: str, last: Mapping[str, Any] | None) -> None:
    """Drop an execution's entries once its record is deleted; ``last`` is the record as
    last read (None when it was already gone: then the whole index is walked)."""
    names = entries_at(provider, execution_id, last.get("started_at")) if last else entries_of(provider, execution_id)
    if names:
        provider.delete_records(names)


def _mark_if_first(provider, execution_id: str) -> None:
    if provider.__dict__.get(_CHECKED):
        return
    if not is_ready(provider):
        others = (name for name in provider.list_records(RECORDS) if name != f"{RECORDS}{execution_id}.json")
        if next(others, None) is None:
            mark_ready(provider)
    provider.__dict__[_CHECKED] = True


def mark_ready(provider) -> None:
    provider.put_record(MARKER, orjson.dumps({"version": 1, "built_at": format_time(datetime.now(timezone.utc))}))
    provider.__dict__[_READY] = True


def is_ready(provider) -> bool:
    if provider.__dict__.get(_READY):
        return True
    if provider.get_record(MARKER) is None:
        return False
    provider.__dict__[_READY] = True
    return True


# -- readers -------------------------------------------------------------------


def indexed(provider, start_after: str, *, first_page: int | None = None) -> Iterator[list[Entry]]:
    """Entries from ``start_after`` on, grouped by execution: a group of two or more is a
    write a writer has not finished (or was killed in). ``first_page``: how many groups
    the caller expects to read (the index is then listed that many names at first)."""
    group: list[Entry] = []
    names = provider.list_records(PREFIX, start_after=PREFIX + start_after if start_after else None,
                                  # A group is complete once the next one's first name is seen.
                                  first_page=first_page + 1 if first_page else None)
    for name in names:
        entry = parse(name)
        if entry is None or (entry.hashed and (entry := _unhashed(provider, entry)) is None):
            continue
        if group and entry.position != group[0].position:
            yield group
            group = []
        group.append(entry)
    if group:
        yield group


def _unhashed(provider, entry: Entry) -> Entry | None:
    """A long id's entry with the id it holds (a GET: such ids are rare); None if it is gone."""
    raw = provider.get_record(entry.name)
    if not raw:
        return None
    execution_id = raw.decode("utf-8", "surrogatepass")
    return Entry(entry.name, entry.position, entry.execution_id, {**entry.row, "execution_id": execution_id})


def record_names(provider) -> Iterable[str]:
    return provider.list_records(RECORDS)

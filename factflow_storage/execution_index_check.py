"""``fsck`` of the execution index (``factflow_storage.execution_index``): builds it for a
store written before it, adds the entries a record lacks, drops entries no record backs.

Findings: ``unindexed_execution`` (a record without its entry: a store written before
the index, or by a writer that does not keep it), ``stale_index_entry`` (an entry that
no longer describes its record, or whose record is gone: left by a writer killed between
the two) and ``index_not_built`` (no marker: listings scan every record until repaired).
An entry whose times are younger than the grace period may belong to a write under way
and is left alone; adding an entry is always safe, as readers settle two entries by the
record.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from factflow_storage import execution_index as index
from factflow_storage.fsck import Finding
from factflow_storage.parallel import ordered_map

RESERVED = "_factflow/"


def check(provider, *, repair: bool, grace: float) -> Iterator[Finding]:
    now = index.micros(datetime.now(timezone.utc).isoformat()) or 0
    ready = index.is_ready(provider)
    names = [name for name in index.record_names(provider) if name.endswith(".json")]
    ids = [name[len(index.RECORDS):-len(".json")] for name in names]
    entries: dict[str, list[index.Entry]] = {}
    for name in provider.list_records(index.PREFIX):
        entry = index.parse(name)
        if entry is not None:
            entries.setdefault(entry.execution_id, []).append(entry)
    for execution_id, record in zip(ids, ordered_map(provider.read_execution, ids), strict=True):
        if record is None:
            continue
        want = index.entry_name(execution_id, record)
        have = entries.pop(index.id_part(execution_id), [])
        if want not in {entry.name for entry in have}:
            if repair:
                provider.put_record(want, index.entry_body(execution_id))
            yield Finding("unindexed_execution", f"{RESERVED}{index.RECORDS}{execution_id}.json",
                          "the execution index has no entry for this record", repaired=repair)
        yield from _stale([entry for entry in have if entry.name != want], provider, repair, grace, now,
                          "no longer describes its record")
    for leftover in entries.values():
        yield from _stale(leftover, provider, repair, grace, now, "its execution record is gone")
    if not ready and ids:  # a store with no record is listed from its (empty) index already
        if repair:
            index.mark_ready(provider)
        yield Finding("index_not_built", f"{RESERVED}{index.PREFIX}",
                      "execution lists scan every record until the index is built", repaired=repair)


def _stale(found: list[index.Entry], provider, repair: bool, grace: float, now: int,
           detail: str) -> Iterator[Finding]:
    for entry in found:
        latest = max(index.micros(entry.row["finished_at"]) or 0, entry.started)
        if now - latest < grace * 1_000_000:
            continue  # may be a write under way
        if repair:
            provider.delete_records([entry.name])
        yield Finding("stale_index_entry", f"{RESERVED}{entry.name}", detail, repaired=repair)

"""Execution records: ``_factflow/executions/<exec-id>.json`` in storage itself, so every
CLI and every server replica sees the same lifecycle."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any, Protocol

import orjson

from factflow_storage import execution_index as index
from factflow_storage import metadata as clock
from factflow_storage.errors import BadRequest, Conflict, Deleted, NotFound
from factflow_storage.keys import execution_prefix, validate_execution_id
from factflow_storage.parallel import ordered_map
from factflow_storage.protocol import StorageProtocol

RUNNING = "running"
DELETING = "deleting"  # set by factflow_storage.retention; not a status writers may set
COMPLETED = "completed"
DELETED = "deleted"  # a deletion record's final state; the execution record is gone by then
DELETIONS = "deletions/"
TERMINAL_STATUSES = ("completed", "failed", "cancelled", "interrupted")
STATUSES = (RUNNING, *TERMINAL_STATUSES)
LISTED_STATUSES = (*STATUSES, DELETING)  # what a list may be filtered by
UNKNOWN = "no execution {!r} (no record and no objects): start it first, or use --force"
ALREADY_FINISHED = "execution {!r} is already {}: use --force to {}"


class ExecutionStore(StorageProtocol, Protocol):
    """A provider's primitives with execution records on top: ``factflow_storage.store.Store``
    (which imports this module, so it is named here by its shape)."""

    def read_execution(self, execution_id: str) -> dict[str, Any] | None:
        """The execution's record, or None when it has none."""

    def write_execution(self, execution_id: str, record: Mapping[str, Any]) -> None:
        """Replace the execution's record whole and durably, keeping its index in step."""


def is_terminal(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("status") in TERMINAL_STATUSES


def get_execution(provider: ExecutionStore, execution_id: str) -> dict[str, Any]:
    validate_execution_id(execution_id)
    record = provider.read_execution(execution_id)
    if record is None:
        deletion = read_deletion(provider, execution_id)
        if deletion and deletion.get("state") == DELETED:
            raise Deleted(f"no execution {execution_id!r}: {deleted_line(execution_id, deletion)}")
        raise NotFound(f"no execution {execution_id!r}")
    return record


def set_status(provider: ExecutionStore, execution_id: str, status: str, *, strict: bool = False) -> dict[str, Any]:
    """Start (``running``) or finish (a terminal status) an execution; returns the record.

    Writers may finish without starting. ``strict`` is for people at a prompt: finishing
    an id that names nothing, or changing a terminal status, is refused as a likely typo.
    """
    validate_execution_id(execution_id)
    if status not in STATUSES:
        raise BadRequest(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
    found = provider.read_execution(execution_id)
    if found and found.get("status") == DELETING:
        raise Conflict(f"execution {execution_id} is being deleted; finish that with "
                       f"'factflow execution delete {execution_id} --yes' first")
    if strict:
        _check_transition(provider, execution_id, found, status)
    record = found or {"execution_id": execution_id}
    now = clock.now_rfc3339()
    if status == RUNNING:
        record.update(status=RUNNING, started_at=record.get("started_at") or now, finished_at=None)
    else:
        record.setdefault("started_at", now)
        record.update(status=status, finished_at=now,
                      object_count=sum(1 for _ in provider.list(execution_prefix(execution_id))))
    provider.write_execution(execution_id, record)
    return record


def _check_transition(provider: ExecutionStore, execution_id: str, record: dict[str, Any] | None,
                      status: str) -> None:
    if record is None and status != RUNNING and not any(True for _ in provider.list(execution_prefix(execution_id), limit=1)):
        raise NotFound(UNKNOWN.format(execution_id))
    if record is not None and is_terminal(record):
        action = "reopen it" if status == RUNNING else "change its status"
        raise Conflict(ALREADY_FINISHED.format(execution_id, record["status"], action))


def list_executions(provider: ExecutionStore, *, statuses: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Every execution as a list row, newest first."""
    return [row for _place, row in iter_rows(provider, statuses=statuses)]


def iter_rows(provider: ExecutionStore, *, after: str | None = None, statuses: Collection[str] | None = None,
              since: int | None = None, until: int | None = None,
              expected: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """List rows newest first, each with its place in that order (a cursor): those past
    ``after``, with a status in ``statuses``, started at or after ``since`` and before
    ``until`` (microseconds since the epoch). From the index when the store has one:
    listings only, read as far as the page needs (``expected`` rows, when the caller
    knows: a page's first listing is then that short); else from a scan of every record."""
    start_after = max(index.after_position(after) if after else "", index.before_start(until) if until is not None else "")
    if index.is_ready(provider):
        rows = _indexed_rows(provider, start_after, expected)
    else:
        rows = _scanned_rows(provider, start_after)
    for place, row in rows:
        if since is not None and index.INVERT - int(place[:16]) < since:
            return  # older from here on (an unknown start counts as the oldest)
        if statuses is None or row["status"] in statuses:
            yield place, row


def _indexed_rows(provider: ExecutionStore, start_after: str,
                  expected: int | None) -> Iterator[tuple[str, dict[str, Any]]]:
    for group in index.indexed(provider, start_after, first_page=expected):
        if len(group) == 1:
            yield group[0].position, group[0].row
            continue
        execution_id = group[0].row["execution_id"]
        record = provider.read_execution(execution_id)  # a write under way, or a killed one
        if record is not None and index.position(execution_id, record.get("started_at")) == group[0].position:
            yield group[0].position, index.summary(record)


def _scanned_rows(provider: ExecutionStore, start_after: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A store written before the index: every record, read concurrently, then sorted."""
    ids = [name[len(index.RECORDS):-len(".json")] for name in index.record_names(provider) if name.endswith(".json")]
    rows = []
    for execution_id, record in zip(ids, ordered_map(provider.read_execution, ids), strict=True):
        if record is not None:
            place = index.position(execution_id, record.get("started_at"))
            if place > start_after:
                rows.append((place, {**index.summary(record), "execution_id": execution_id}))
    rows.sort(key=lambda item: item[0])
    yield from rows


def delete_record(provider: ExecutionStore, execution_id: str, last: Mapping[str, Any] | None) -> None:
    """Delete an execution's record, then its index entries: the one step retention takes
    to make an execution leave the list. ``last`` is the record as last read, if any."""
    provider.delete_records([f"executions/{execution_id}.json"])
    index.forget(provider, execution_id, last)


def refuse_deleting(record: dict[str, Any] | None, execution_id: str) -> None:
    """Readers of a whole execution stop at one that is half deleted."""
    if record and record.get("status") == DELETING:
        raise Conflict(f"execution {execution_id} is being deleted (status deleting); finish with "
                       f"'factflow execution delete {execution_id} --yes'")


def deletion_name(execution_id: str) -> str:
    return f"{DELETIONS}{execution_id}.json"


def read_deletion(provider, execution_id: str) -> dict[str, Any] | None:
    raw = provider.get_record(deletion_name(execution_id))
    try:
        found = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def deletion_state(provider: ExecutionStore, execution_id: str) -> tuple[str | None, dict[str, Any] | None]:
    """``deleting``, ``deleted`` or None (alive or unknown), with the deletion record when read.

    A deletion writes its record, then marks the execution record: when that record
    exists its status decides (one read), otherwise the deletion record does.
    """
    record = provider.read_execution(execution_id)
    if record is not None:
        return (DELETING if record.get("status") == DELETING else None), None
    deletion = read_deletion(provider, execution_id)
    state = deletion.get("state") if deletion else None
    return (state if state in (DELETING, DELETED) else None), deletion


def deleted_line(execution_id: str, deletion: dict[str, Any] | None) -> str:
    """How a deleted execution is named to users: when and by whom."""
    deletion = deletion or {}
    moment = deletion.get("finished_at") or deletion.get("started_at") or "?"
    return f"execution {execution_id} was deleted at {moment} by {deletion.get('requested_by') or '?'}"


"""The cross-execution reference index: who depends on an execution, found without a scan,
and the handshake that keeps a deletion from removing what a kept execution names.

An object's metadata may name parents in ``lineage`` (keys, possibly of other
executions: a replay that reuses an upstream stage's output). When a writer stores an
object of execution E whose lineage names keys of execution P, the provider first writes

    _factflow/lineage/refs/<P>/<E>/<sha256 of the child key>.json   {"key", "parents", "written_at"}
    _factflow/lineage/uses/<E>/<P>                                   (empty marker)

So deciding whether P may go is one listing of ``lineage/refs/<P>/`` plus one read per
reference: the cost follows the number of references to P, not the size of the store.
``uses/<E>/`` tells a deletion of E which ``refs/*/E/`` records to drop with it. The
marker is written with every such write (never remembered per process: a deletion of E
removes it behind a long-running server's back).

Deciding at the moment of deletion (``guard_write``, ``confirm_write`` and
``factflow_storage.retention.delete``) is a two-sided handshake, each side writing its
intent before reading the other's:

* a writer puts its reference records, then reads each parent execution's state, and
  refuses (Conflict, nothing committed) if P is ``deleting``, or deleted and the named
  key is gone;
* a deletion first claims P (``retention.deletion_claims``: a create-only record, so one
  deleter at a time), then marks P ``deleting`` (deletion record, then execution record)
  and only then lists P's references; any live one stops it and P goes back to its
  former status.

Storage is read-after-write consistent (a filesystem; S3 since 2020, radosgw), so one of
the two reads sees the other's write: either the writer sees ``deleting``, or the
deletion sees the reference. A reference whose child is not committed yet counts as live
while it is younger than ``PENDING_GRACE`` (the writer is between its check and its
commit); older ones with no child are what a killed writer left, and are ignored.
Writes into P itself are checked after their commit (``confirm_write``): a write that
finds P ``deleting`` removes its object again and is refused, while one committed
before the mark is in the listing the deletion makes after it.

What remains: both sides can back off at once (the write is refused and the deletion
skipped, to be retried), which costs a retry but never data. A writer that takes longer
than ``PENDING_GRACE`` between putting its reference and committing can lose its
parent; and a write into P that commits as P's deletion finishes (after the last
listing, before its own check reads the final state) leaves one stray object in the
deleted execution: it names nothing kept, and ``execution delete`` again removes it.
Two deleters of one execution (two prunes, a prune and a delete) do not interleave: the
claim lets one of them mark, check, release or delete it, and the other leaves it alone
and says who holds it. (Without it, one could release P, a reference found and P
``completed`` again, while the other, past its check, deleted on: a writer then naming P
lost its parent.) A claim whose holder was killed is taken over at once on the same
host (its pid is gone) and after its lease elsewhere; the taker finishes the deletion as
a re-run does. Before each step that removes something a deleter checks that the claim
is still its own and that P is still marked ``deleting``, else it stops.

What remains there: a holder paused for longer than its lease (five minutes: a stopped
process, a partition) exactly between such a check and its next write can take that one
step after being taken over. Deleting P's keys or recording counts is a step the new
holder takes too (at worst a count is off). A release in that window needs the paused
holder to have found a reference the new holder did not see (one whose writer has since
been refused), and then puts P back to ``completed`` while the new holder deletes: a
writer naming P before the new holder's next check (within one chunk) could lose its
parent. That takes a pause of minutes at one instruction and a refused writer at once;
the lease makes it rarer than any other failure, not impossible.

Cost to a write: one read of the execution record after the commit (two when the
execution has no record: the deletion record too); with cross-execution lineage, per
parent execution two small puts (reference and marker) and one record read before it.
The claim adds nothing to a write: only deleters take it (one listing, one create-only
put and one delete per execution, and a renewal every quarter lease).

Lineage values that are not conventional keys (a lineage row id) name no execution and
are not indexed; neither are children outside ``executions/``. Lineage that arrives
without a factflow writer (a copy by another tool) has no reference until ``fsck
--repair`` indexes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from factflow_storage import executions, stage_graph
from factflow_storage import metadata as clock
from factflow_storage.errors import Conflict, InvalidKey, NotFound, StorageError
from factflow_storage.fsck import Finding
from factflow_storage.keys import EXECUTIONS_PREFIX, parse_key, validate_execution_id, validate_key
from factflow_storage.parallel import ordered_map

REFS = "lineage/refs/"
USES = "lineage/uses/"
# How long a reference whose child is not committed yet still protects its parent.
PENDING_GRACE = 3600.0


@dataclass(frozen=True, slots=True)
class Reference:
    """``key`` (of execution ``execution_id``) names ``parent`` (of execution ``parent_execution``)."""

    execution_id: str
    key: str
    parent_execution: str
    parent: str

    def row(self) -> dict[str, str]:
        return {"execution_id": self.execution_id, "key": self.key, "parent": self.parent}


def lineage_keys(value: Any) -> list[str]:
    """The keys a ``lineage`` value names: a key, or a list of them; anything else names none."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    keys = []
    for item in items:
        if not isinstance(item, str):
            continue
        try:
            keys.append(validate_key(item))
        except InvalidKey:
            continue
    return keys


def foreign_parents(key: str, lineage: Any) -> dict[str, list[str]]:
    """Parents of ``key`` in other executions, by execution id."""
    child = parse_key(key)
    if child is None:
        return {}
    found: dict[str, list[str]] = {}
    for parent in lineage_keys(lineage):
        parts = parse_key(parent)
        if parts is not None and parts.route_id is not None and parts.execution_id != child.execution_id:
            found.setdefault(parts.execution_id, []).append(parent)
    return found


def ref_name(parent_execution: str, execution_id: str, key: str) -> str:
    return f"{REFS}{parent_execution}/{execution_id}/{hashlib.sha256(key.encode()).hexdigest()}.json"


def note_lineage(provider, key: str, lineage: Any) -> dict[str, list[str]]:
    """Index the cross-execution parents of ``key`` (called before the object is written)."""
    parents = foreign_parents(key, lineage)
    if not parents:
        return parents
    execution_id = parse_key(key).execution_id  # type: ignore[union-attr]
    now = clock.now_rfc3339()
    for parent_execution, keys in parents.items():
        provider.put_record(ref_name(parent_execution, execution_id, key),
                            orjson.dumps({"key": key, "parents": keys, "written_at": now}))
        provider.put_record(f"{USES}{execution_id}/{parent_execution}", b"")
    return parents


def guard_write(provider, key: str, metadata: Any) -> None:
    """Before ``key`` is committed: its execution id must be one that delete accepts, and
    each execution its lineage names must not be going (see the module's handshake)."""
    parts = parse_key(key)
    if parts is None:
        return
    validate_execution_id(parts.execution_id)
    lineage = metadata.get("lineage") if metadata else None
    if not lineage:
        return
    stage_graph.note_edges(provider, key, lineage_keys(lineage))
    for parent_execution, keys in note_lineage(provider, key, lineage).items():
        problem = _parent_problem(provider, parent_execution, keys)
        if problem:
            _drop_unused_reference(provider, parent_execution, parts.execution_id, key)
            raise Conflict(f"not written: {key} names {keys[0]} in its lineage, but {problem}")


def _parent_problem(provider, parent_execution: str, keys: list[str]) -> str | None:
    state, deletion = executions.deletion_state(provider, parent_execution)
    if state == executions.DELETING:
        return f"execution {parent_execution} is being deleted"
    if state == executions.DELETED and not all(provider.exists(parent) for parent in keys):
        return executions.deleted_line(parent_execution, deletion)
    return None


def _drop_unused_reference(provider, parent_execution: str, execution_id: str, key: str) -> None:
    """A refused write takes back its reference, unless the object already there names the parent."""
    try:
        if foreign_parents(key, provider.metadata(key).get("lineage")).get(parent_execution):
            return
    except (NotFound, InvalidKey):
        pass
    provider.delete_records([ref_name(parent_execution, execution_id, key)])


def confirm_write(provider, key: str) -> None:
    """After ``key`` is committed: if its execution has begun to be deleted meanwhile, the
    object is removed again and the write refused, so no late object outlives the deletion."""
    parts = parse_key(key)
    if parts is None:
        return
    state, _deletion = executions.deletion_state(provider, parts.execution_id)
    if state == executions.DELETING:
        try:
            provider.delete(key)
        except NotFound:
            pass
        raise Conflict(f"not written: execution {parts.execution_id} is being deleted")


def _entries(provider, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    names = list(provider.list_records(prefix))
    for name, raw in zip(names, ordered_map(provider.get_record, names), strict=True):
        if raw is None:
            continue
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            yield name, entry


def _pending(entry: dict[str, Any]) -> bool:
    """A reference young enough that its writer may still be about to commit the child."""
    written = entry.get("written_at")
    if not isinstance(written, str):
        return False
    try:
        age = (_moment(clock.now_rfc3339()) - _moment(written)).total_seconds()
    except ValueError:
        return False
    return age < PENDING_GRACE


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _still_names(provider, key: str, parents: list[str], entry: dict[str, Any] | None = None) -> list[str]:
    """Which of ``parents`` the object at ``key`` still names in its lineage: none if it
    is gone, unless its reference is recent enough that the write may still land."""
    try:
        current = lineage_keys(provider.metadata(key).get("lineage"))
    except (NotFound, InvalidKey):
        return parents if entry is not None and _pending(entry) else []
    except StorageError:
        return parents  # unreadable now: keep the reference rather than risk a replay
    return [parent for parent in parents if parent in current]


def live_references(provider, parent_execution: str) -> Iterator[Reference]:
    """Objects of other executions whose current lineage names keys of ``parent_execution``
    (each child's metadata read concurrently)."""
    entries = list(_entries(provider, f"{REFS}{parent_execution}/"))

    def check(item: tuple[str, dict[str, Any]]) -> list[str]:
        return _still_names(provider, item[1]["key"], list(item[1].get("parents") or []), item[1])

    for (name, entry), live in zip(entries, ordered_map(check, entries), strict=True):
        execution_id = name[len(REFS) + len(parent_execution) + 1:].split("/", 1)[0]
        for parent in live:
            yield Reference(execution_id, entry["key"], parent_execution, parent)


def parents_used(provider, execution_id: str) -> list[str]:
    """The executions ``execution_id``'s objects have named as parents (per the index)."""
    prefix = f"{USES}{execution_id}/"
    return [name[len(prefix):] for name in provider.list_records(prefix)]


def uses_of(provider, execution_id: str) -> Iterator[Reference]:
    """What ``execution_id`` depends on: its objects' live references into other executions."""
    for parent_execution in parents_used(provider, execution_id):
        for _name, entry in _entries(provider, f"{REFS}{parent_execution}/{execution_id}/"):
            for parent in _still_names(provider, entry["key"], list(entry.get("parents") or [])):
                yield Reference(execution_id, entry["key"], parent_execution, parent)


def index_records(provider, execution_id: str) -> Iterator[str]:
    """Every index record that mentions ``execution_id``, to go with its deletion."""
    for parent_execution in parents_used(provider, execution_id):
        yield from provider.list_records(f"{REFS}{parent_execution}/{execution_id}/")
    dependants = set()
    for name in provider.list_records(f"{REFS}{execution_id}/"):
        yield name
        dependants.add(name[len(REFS) + len(execution_id) + 1:].split("/", 1)[0])
    for dependant in sorted(dependants):
        yield f"{USES}{dependant}/{execution_id}"
    yield from provider.list_records(f"{USES}{execution_id}/")


def children_of(provider, key: str) -> Iterator[str]:
    """Objects of other executions whose current lineage names ``key``: one listing of the
    references to ``key``'s execution, and a metadata read only for those that name ``key``."""
    parts = parse_key(key)
    if parts is None:
        return
    for _name, entry in _entries(provider, f"{REFS}{parts.execution_id}/"):
        parents = list(entry.get("parents") or [])
        if key in parents and _still_names(provider, entry["key"], [key]):
            yield entry["key"]


UNINDEXED = "unindexed_lineage"


def check_index(provider, prefix: str, *, repair: bool) -> Iterator[Finding]:
    """fsck's pass over the index: objects under ``prefix`` whose lineage names another
    execution's keys without the references a factflow write makes (a copy by another
    tool, a store written before the index); ``repair`` writes them, which protects the
    parents from then on. One metadata read per object, one record read per reference."""
    if not (prefix.startswith(EXECUTIONS_PREFIX) or EXECUTIONS_PREFIX.startswith(prefix)):
        return
    for info in provider.list(prefix if prefix.startswith(EXECUTIONS_PREFIX) else EXECUTIONS_PREFIX):
        try:
            lineage = provider.metadata(info.key).get("lineage")
        except StorageError:
            continue  # the provider's own pass reports unreadable metadata
        parents = foreign_parents(info.key, lineage)
        if not parents:
            continue
        execution_id = parse_key(info.key).execution_id  # type: ignore[union-attr]
        missing = [parent for parent in parents
                   if provider.get_record(ref_name(parent, execution_id, info.key)) is None
                   or provider.get_record(f"{USES}{execution_id}/{parent}") is None]
        if not missing:
            continue
        if repair:
            note_lineage(provider, info.key, lineage)
        yield Finding(UNINDEXED, info.key, f"names keys of {', '.join(missing)} in its lineage, "
                      "with no entry in the lineage index: deleting those would not see it", repaired=repair)

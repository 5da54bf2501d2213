"""The cross-execution reference index: who depends on an execution, found without a scan.

An object's metadata may name parents in ``lineage`` (keys, possibly of other
executions: a replay that reuses an upstream stage's output). When a writer stores an
object of execution E whose lineage names keys of execution P, the provider first writes
(``BaseProvider.index_lineage``, before the object is committed):

    _factflow/lineage/refs/<P>/<E>/<sha256 of the child key>.json   {"key", "parents"}
    _factflow/lineage/uses/<E>/<P>                                   (empty marker)

So deciding whether P may go is one listing of ``lineage/refs/<P>/`` plus one read per
reference: the cost follows the number of references to P, not the size of the store.
``uses/<E>/`` tells a deletion of E which ``refs/*/E/`` records to drop with it.

The index errs on the side of keeping data: an entry is written before its object, so a
writer killed in between leaves an entry for an object that does not exist. Every entry
is therefore checked against the child's current metadata before it blocks a deletion
(``live_references``); stale ones are ignored and go with the deletion of P. Lineage
values that are not conventional keys (a lineage row id) name no execution and are not
indexed; neither are children outside ``executions/``. A child written while P is being
deleted may lose its parent: deletion marks P ``deleting`` first, so a writer can see it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from factflow_storage.errors import InvalidKey, NotFound, StorageError
from factflow_storage.keys import parse_key, validate_key
from factflow_storage.parallel import ordered_map

REFS = "lineage/refs/"
USES = "lineage/uses/"


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


def note_lineage(provider, key: str, lineage: Any) -> None:
    """Index the cross-execution parents of ``key`` (called before the object is written)."""
    parents = foreign_parents(key, lineage)
    if not parents:
        return
    execution_id = parse_key(key).execution_id  # type: ignore[union-attr]
    # One marker per (E, P) is enough; remember the ones this provider already wrote.
    marked: set = provider.__dict__.setdefault("_lineage_uses_marked", set())
    for parent_execution, keys in parents.items():
        provider.put_record(ref_name(parent_execution, execution_id, key),
                            orjson.dumps({"key": key, "parents": keys}))
        if (execution_id, parent_execution) not in marked:
            provider.put_record(f"{USES}{execution_id}/{parent_execution}", b"")
            marked.add((execution_id, parent_execution))


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


def _still_names(provider, key: str, parents: list[str]) -> list[str]:
    """Which of ``parents`` the object at ``key`` still names in its lineage (none if it is gone)."""
    try:
        current = lineage_keys(provider.metadata(key).get("lineage"))
    except (NotFound, InvalidKey):
        return []
    except StorageError:
        return parents  # unreadable now: keep the reference rather than risk a replay
    return [parent for parent in parents if parent in current]


def live_references(provider, parent_execution: str) -> Iterator[Reference]:
    """Objects of other executions whose current lineage names keys of ``parent_execution``
    (each child's metadata read concurrently)."""
    entries = list(_entries(provider, f"{REFS}{parent_execution}/"))

    def check(item: tuple[str, dict[str, Any]]) -> list[str]:
        return _still_names(provider, item[1]["key"], list(item[1].get("parents") or []))

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

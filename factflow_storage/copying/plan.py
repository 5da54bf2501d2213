"""What a copy would do: per execution (or prefix), the objects to copy and those already
in the destination, checked before anything is written."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from factflow_storage.errors import Conflict, NotFound
from factflow_storage.executions import refuse_deleting
from factflow_storage.keys import execution_prefix, validate_execution_id, validate_prefix
from factflow_storage.lineage_index import foreign_parents
from factflow_storage.metadata import STALE_CHECKSUM
from factflow_storage.protocol import ObjectInfo
from factflow_storage.store import Store

OTHER_RUN = ("execution {id!r} already exists in {dest} with other content ({why}): refusing to merge "
             "two runs; use --force to replace it")
UNKNOWN = "no execution {id!r} in {source} (no record and no objects)"


@dataclass(slots=True)
class Item:
    key: str
    size: int
    checksum: str | None
    lineage: Any = None
    copy: bool = True


@dataclass(slots=True)
class Plan:
    """One execution (``execution_id`` set) or one prefix to copy."""

    prefix: str
    execution_id: str | None = None
    record: dict[str, Any] | None = None
    items: list[Item] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # destination keys the source lacks (--force drops them)
    replace_record: bool = False  # the destination's record names another run (--force)
    write_record: bool = False
    verified: int = 0  # objects whose destination checksum had to be read (the manifest did not know them)

    @property
    def to_copy(self) -> list[Item]:
        return [item for item in self.items if item.copy]

    def parents(self) -> dict[str, set[str]]:
        """Parent keys in other executions, by execution id."""
        found: dict[str, set[str]] = {}
        for item in self.items:
            for execution_id, keys in foreign_parents(item.key, item.lineage).items():
                found.setdefault(execution_id, set()).update(keys)
        return found


def manifest_name(prefix: str) -> str:
    """Where the destination remembers what a copy of ``prefix`` left there: per key, the
    ETag its listing shows and the checksum of those bytes. A re-run trusts an unchanged
    ETag instead of reading every object's metadata again; any rewrite changes the ETag."""
    return f"copies/{hashlib.sha256(prefix.encode()).hexdigest()}.json"


def read_manifest(dest: Store, prefix: str) -> dict[str, list[str]]:
    raw = dest.get_record(manifest_name(prefix))  # type: ignore[attr-defined]
    try:
        found = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    objects = found.get("objects") if isinstance(found, dict) else None
    return objects if isinstance(objects, dict) else {}


def write_manifest(dest: Store, plan: Plan) -> None:
    """After the plan's objects are all in place: their ETags (where the store has them)."""
    checksums = {item.key: item.checksum for item in plan.items if item.checksum}
    objects = {info.key: [info.etag, checksums[info.key]] for info in dest.list(plan.prefix)
               if info.etag and info.key in checksums}
    if objects:
        dest.put_record(manifest_name(plan.prefix), orjson.dumps({"prefix": plan.prefix, "objects": objects}))


def _checksum(blob: dict[str, Any]) -> str | None:
    return None if STALE_CHECKSUM in blob else blob.get("checksum")


def _blobs(provider: Store, infos: Iterable[ObjectInfo], jobs: int) -> Iterator[tuple[ObjectInfo, dict]]:
    """Each object's metadata, read ``jobs`` at a time, in order."""
    with ThreadPoolExecutor(jobs) as pool:
        futures = [(info, pool.submit(provider.metadata, info.key)) for info in infos]
        for info, future in futures:
            try:
                yield info, future.result()
            except NotFound:
                continue  # deleted since it was listed


def source_exists(source: Store, execution_id: str) -> dict[str, Any] | None:
    """The source's record; NotFound when the execution names nothing there."""
    validate_execution_id(execution_id)
    record = source.read_execution(execution_id)
    refuse_deleting(record, execution_id)
    if record is None and next(iter(source.list(execution_prefix(execution_id), limit=1)), None) is None:
        raise NotFound(UNKNOWN.format(id=execution_id, source=source.uri))
    return record


def plan_prefix(source: Store, dest: Store, prefix: str, *, jobs: int,
                execution_id: str | None = None, record: dict[str, Any] | None = None,
                force: bool = False) -> Plan:
    validate_prefix(prefix)
    plan = Plan(prefix, execution_id, record)
    for info, blob in _blobs(source, source.list(prefix), jobs):
        plan.items.append(Item(info.key, info.size, _checksum(blob), blob.get("lineage")))
    dest.check_keys(item.key for item in plan.items)
    present = {info.key: info for info in dest.list(prefix)}
    wanted = {item.key for item in plan.items}
    plan.extra = sorted(key for key in present if key not in wanted)
    if execution_id is not None:
        _check_same_run(plan, dest, force)
    known = read_manifest(dest, prefix)
    same_size = []
    for item in plan.items:
        found = present.get(item.key)
        if found is None or found.size != item.size or not item.checksum:
            continue
        if found.etag and known.get(item.key) == [found.etag, item.checksum]:
            item.copy = False
        else:
            same_size.append(found)
    plan.verified = len(same_size)
    there = {info.key: _checksum(blob) for info, blob in _blobs(dest, same_size, jobs)}
    for item in plan.items:
        if item.copy:
            item.copy = there.get(item.key) != item.checksum or item.checksum is None
    return plan


def _check_same_run(plan: Plan, dest: Store, force: bool) -> None:
    """An id the destination holds for another run is refused (unless ``force``): its
    record started at another time, or it holds objects the source does not."""
    assert plan.execution_id is not None
    theirs = dest.read_execution(plan.execution_id)
    why = None
    if theirs is not None and plan.record is not None and theirs.get("started_at") != plan.record.get("started_at"):
        why = f"its record started at {theirs.get('started_at')}, the source's at {plan.record.get('started_at')}"
        plan.replace_record = True
    elif theirs is not None and plan.record is None:
        why = "a record the source does not have"
        plan.replace_record = True
    if plan.extra and why is None:
        why = f"{len(plan.extra)} objects the source does not have, such as {plan.extra[0]!r}"
    if why is not None and not force:
        raise Conflict(OTHER_RUN.format(id=plan.execution_id, dest=dest.uri, why=why))
    plan.write_record = plan.record is not None and (theirs != plan.record)

"""The service layer: what the CLI and the HTTP API both call, so they behave the same
by construction. Results are plain JSON-ready values; rows stream as generators.

``RemoteService`` (``factflow_storage.client``) offers the same methods over HTTP, which
is how the CLI's ``--api`` mode prints exactly what direct mode prints.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import fnmatch
import re
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, ParamSpec, TypeVar, cast

import orjson

from factflow_storage import executions
from factflow_storage.execution_index import micros
from factflow_storage.errors import BadRequest, Conflict
# narrow_prefix and split_extensions are imported from here by other modules too.
from factflow_storage.keys import (
    execution_prefix,
    has_control_character,
    key_matches,
    narrow_prefix,
    split_extensions,
    validate_key,
    validate_prefix,
)
from factflow_storage.metadata import format_time, is_json_type
from factflow_storage.operations.results import (ArchiveJob, Browse, CopySummary, DeletionPlan, Dependencies,
                                                 Execution, ExecutionGraph, ExecutionPage, FsckReport, Health,
                                                 LineageNode, ListPage, PrunePlan)
from factflow_storage.protocol import ObjectInfo, ObjectStream, PrefixInfo, StorageProtocol, WriteCondition
from factflow_storage.store import Store, as_store

if TYPE_CHECKING:
    from factflow_storage.interface import RecordStore
    from factflow_storage.operations import Operation
    from factflow_storage.watch.events import CountsEvent, Event

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_PAGE = 100
MAX_PAGE = 1000
# With a name filter a page may need a long scan to fill: each request reads at most this
# many keys and answers a cursor to go on from, so no request reads a whole big stage.
SCAN_LIMIT = 10_000
MAX_FILTER = 1024
METADATA_WORKERS = 16
PREFIX_NOT_OBJECT = ("{key!r} is a prefix, not an object: nothing deleted; delete a whole execution "
                     "with 'factflow execution delete ID'")


_NO_ARCHIVES = "archive jobs are served by `factflow serve` (use --api); in process, objects are copied directly"


def json_bytes(value: Any) -> bytes:
    """The one JSON encoding of service results, for the CLI's output and the API's bodies."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def object_row(info: ObjectInfo) -> dict[str, Any]:
    """A listing row: only what an S3 listing returns."""
    return {"key": info.key, "size": info.size, "last_modified": format_time(info.last_modified)}


def encode_cursor(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        position = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest(f"invalid cursor {cursor!r}") from None
    if has_control_character(position):
        # next_cursor never encodes one (no key holds it): this cursor was made up.
        raise BadRequest(f"invalid cursor {cursor!r}")
    return position


def entry_name(entry: ObjectInfo | PrefixInfo) -> str:
    return entry.key if isinstance(entry, ObjectInfo) else entry.prefix


def name_filter(prefix: str, contains: str | None, match: str | None) -> Callable[[str], bool] | None:
    """Whether an entry's name passes ``contains`` and the glob ``match`` (None: no filter)."""
    if not contains and not match:
        return None
    for name, value in (("contains", contains), ("match", match)):
        if value and len(value.encode()) > MAX_FILTER:
            raise BadRequest(f"{name} must be at most {MAX_FILTER} bytes")
    base = len(prefix) - len(prefix.rsplit("/", 1)[-1]) if "/" in prefix else 0
    pattern = fnmatch.translate(match) if match else None
    compiled = re.compile(pattern) if pattern else None

    def passes(key: str) -> bool:
        name = key[base:].rstrip("/")
        return (not contains or contains in name) and (compiled is None or compiled.match(name) is not None)

    return passes


def _scan(entries: Iterator[ObjectInfo | PrefixInfo], wanted: Callable[[str], bool],
          count: int) -> tuple[list[ObjectInfo | PrefixInfo], str | None]:
    """Up to ``count`` entries that pass, reading at most ``SCAN_LIMIT``; and the last name
    read when the cap ended the scan (where the next request goes on)."""
    found: list[ObjectInfo | PrefixInfo] = []
    scanned = 0
    for entry in entries:
        scanned += 1
        if wanted(entry_name(entry)):
            found.append(entry)
            if len(found) >= count:
                return found, None
        if scanned >= SCAN_LIMIT:
            # A cursor only if something follows: a last request that finds nothing helps nobody.
            return found, entry_name(entry) if next(entries, None) is not None else None
    return found, None


def decode_place(cursor: str) -> str:
    """An execution list cursor: a place in the index's order (it ends with '/')."""
    place = decode_cursor(cursor)
    if len(place) < 19 or not place[:16].isdigit() or place[16] != "_" or not place.endswith("/"):
        raise BadRequest(f"invalid cursor {cursor!r}")
    return place


def execution_filters(status: str | Sequence[str] | None, since: str | None, until: str | None) -> dict[str, Any]:
    """The execution list's filters, checked: statuses (comma-separated or a list) and
    RFC 3339 bounds on the start."""
    items = status.split(",") if isinstance(status, str) else list(status or ())
    statuses = {item.strip() for item in items if item.strip()} or None
    for item in statuses or ():
        if item not in executions.LISTED_STATUSES:
            raise BadRequest(f"unknown status {item!r}: expected one of {', '.join(executions.LISTED_STATUSES)}")
    bounds = {}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            moment = micros(value)
            if moment is None:
                raise BadRequest(f"{name} must be an RFC 3339 time like 2026-01-31T00:00:00Z, not {value!r}")
            bounds[name] = moment
    return {"statuses": statuses, **bounds}


def make_document(key: str, data: bytes, blob: dict[str, Any]) -> dict[str, Any]:
    """``get --output json``'s document: content parsed when JSON, text when UTF-8, else base64."""
    document: dict[str, Any] = {"key": key, "metadata": blob}
    if is_json_type(blob.get("content_type")):
        try:
            document["content"] = orjson.loads(data)
            return document
        except orjson.JSONDecodeError:
            pass
    try:
        document["content"] = data.decode("utf-8")
    except UnicodeDecodeError:
        document["content"] = base64.b64encode(data).decode("ascii")
        document["content_encoding"] = "base64"
    return document


class StorageService:
    def __init__(self, provider: StorageProtocol | Store):
        self.provider = as_store(provider)

    def call(self, operation: Operation[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a declared operation in process (``RemoteService.call`` sends it over HTTP)."""
        if operation.on != "service":
            raise BadRequest(_NO_ARCHIVES)
        return operation.invoke(self, *args, **kwargs)

    # -- listings ------------------------------------------------------------

    def iter_objects(self, prefix: str = "", *, start_after: str | None = None,
                     route_id: str | None = None, stage: str | None = None,
                     extension: str | Sequence[str] | None = None, contains: str | None = None,
                     match: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` that pass the filters, in key order, streamed; ``contains``
        and ``match`` test the key past the prefix's last '/' (``name_filter``)."""
        validate_prefix(prefix)
        extensions = split_extensions(extension)
        routes, stages = (route_id,) if route_id else (), (stage,) if stage else ()
        wanted = name_filter(prefix, contains, match)
        for info in self.provider.list(narrow_prefix(prefix, route_id, stage), start_after=start_after):
            if key_matches(info.key, routes, stages, extensions) and (wanted is None or wanted(info.key)):
                yield info

    def list_rows(self, prefix: str = "", *, limit: int | None = None, with_metadata: bool = False,
                  **filters: Any) -> Iterator[dict[str, Any]]:
        """The CLI's flat listing: one row per object, streamed."""
        infos = itertools.islice(self.iter_objects(prefix, **filters), limit)
        if not with_metadata:
            for info in infos:
                yield object_row(info)
            return
        for info, blob in self._with_metadata(infos):
            yield {**object_row(info), "metadata": blob}

    def list_page(self, prefix: str = "", *, delimiter: str | None = None, route_id: str | None = None,
                  stage: str | None = None, extension: str | None = None, include_metadata: bool = True,
                  limit: int = DEFAULT_PAGE, cursor: str | None = None, offset: int = 0,
                  start_after: str | None = None, contains: str | None = None,
                  match: str | None = None) -> ListPage:
        """One page of the list API: ``{"objects", "common_prefixes", "next_cursor"}``.

        ``contains`` and ``match`` (a glob) filter on an entry's name, its key past the
        prefix's last '/' (a folder's without its trailing '/'); a filtered page stops
        after ``SCAN_LIMIT`` keys with a ``next_cursor`` even when it holds fewer entries."""
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
        if offset < 0:
            raise BadRequest("offset must not be negative")
        if delimiter not in (None, "", "/"):
            raise BadRequest("delimiter must be '/'")
        if cursor and start_after:
            raise BadRequest("give cursor or start_after, not both")
        if start_after is not None and len(start_after.encode()) > MAX_FILTER:
            raise BadRequest(f"start_after must be at most {MAX_FILTER} bytes")
        start_after = decode_cursor(cursor) if cursor else (start_after or None)
        wanted = name_filter(prefix, contains, match)
        one_pass = getattr(self.provider, "list_with_metadata", None)
        if include_metadata and one_pass is not None and not delimiter and not offset and wanted is None:
            return self._page_with_metadata(one_pass, prefix, start_after, route_id, stage, extension, limit)
        if delimiter:
            entries: Iterator[ObjectInfo | PrefixInfo] = self._browse_entries(prefix, start_after, route_id, stage, extension)
        else:
            entries = self.iter_objects(prefix, start_after=start_after, route_id=route_id, stage=stage,
                                        extension=extension)
        resume = None
        if wanted is None:
            page = list(itertools.islice(entries, offset, offset + limit + 1))
        else:
            page, resume = _scan(entries, wanted, offset + limit + 1)
            page = page[offset:]
        more = len(page) > limit
        page = page[:limit]
        objects = [entry for entry in page if isinstance(entry, ObjectInfo)]
        if include_metadata:
            rows = [{**object_row(info), "content_type": blob.get("content_type"), "metadata": blob}
                    for info, blob in self._with_metadata(objects)]
        else:
            rows = [object_row(info) for info in objects]
        last = page[-1] if page else None
        return {
            "objects": rows,
            "common_prefixes": [entry.prefix for entry in page if isinstance(entry, PrefixInfo)],
            "next_cursor": encode_cursor(entry_name(last)) if more and last
            else encode_cursor(resume) if resume else None,
        }

    def _page_with_metadata(self, one_pass: Callable[..., Generator[tuple[ObjectInfo, dict[str, Any]], None, None]],
                            prefix: str, start_after: str | None, route_id: str | None, stage: str | None,
                            extension: str | None, limit: int) -> ListPage:
        """``list_page`` of a flat listing with metadata where the provider lists both in
        one pass: the same page, without a second look at each object."""
        validate_prefix(prefix)
        extensions = split_extensions(extension)
        routes, stages = (route_id,) if route_id else (), (stage,) if stage else ()
        keep = (lambda key: key_matches(key, routes, stages, extensions)) if routes or stages or extensions else None
        pairs = one_pass(narrow_prefix(prefix, route_id, stage), start_after=start_after, keep=keep)
        try:
            page = list(itertools.islice(pairs, limit + 1))
        finally:
            pairs.close()  # its open directories, now rather than when collected
        more = len(page) > limit
        page = page[:limit]
        return {
            "objects": [{**object_row(info), "content_type": blob.get("content_type"), "metadata": blob}
                        for info, blob in page],
            "common_prefixes": [],
            "next_cursor": encode_cursor(page[-1][0].key) if more and page else None,
        }

    def _browse_entries(self, prefix: str, start_after: str | None, route_id: str | None,
                        stage: str | None, extension: str | None) -> Iterator[ObjectInfo | PrefixInfo]:
        validate_prefix(prefix)
        extensions = split_extensions(extension)
        for entry in self.provider.browse(narrow_prefix(prefix, route_id, stage), start_after=start_after):
            if isinstance(entry, ObjectInfo) and not key_matches(entry.key, extensions=extensions):
                continue
            yield entry

    def browse(self, prefix: str = "", *, start_after: str | None = None) -> Browse:
        """One level under ``prefix``: ``{"prefix", "common_prefixes", "objects"}``."""
        common_prefixes, objects = [], []
        for entry in self._browse_entries(prefix, start_after, None, None, None):
            if isinstance(entry, PrefixInfo):
                common_prefixes.append(entry.prefix)
            else:
                objects.append(object_row(entry))
        return {"prefix": prefix, "common_prefixes": common_prefixes, "objects": objects}

    def _with_metadata(self, infos) -> Iterator[tuple[ObjectInfo, dict[str, Any]]]:
        """Pair each object with its metadata, fetched concurrently where the provider
        gains from it, in order, streamed."""
        from concurrent.futures import ThreadPoolExecutor

        workers = getattr(self.provider, "metadata_readers", METADATA_WORKERS)
        if workers <= 1:
            # A pool per request would cost more than the reads, and under many clients
            # its threads queue every request behind the others' hand-offs.
            many = getattr(self.provider, "metadata_many", None)
            if many is None:
                yield from ((info, self.provider.metadata(info.key)) for info in infos)
                return
            listed, keyed = itertools.tee(infos)
            blobs = many(info.key for info in keyed)
            try:
                yield from zip(listed, blobs, strict=True)
            finally:
                blobs.close()  # its open directory, now rather than when collected
            return
        with ThreadPoolExecutor(workers) as pool:
            window: list = []
            for info in infos:
                window.append((info, pool.submit(self.provider.metadata, info.key)))
                if len(window) >= workers * 4:
                    head, future = window.pop(0)
                    yield head, future.result()
            for info, future in window:
                yield info, future.result()

    # -- objects -------------------------------------------------------------

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream:
        return self.provider.open(validate_key(key), start=start, length=length)

    def metadata(self, key: str) -> dict[str, Any]:
        return self.provider.metadata(validate_key(key))

    def get_document(self, key: str) -> dict[str, Any]:
        """``get --output json``: the object with its metadata, content decoded for reading."""
        with self.open(key) as stream:
            data = stream.read()
            blob = stream.metadata
        return make_document(key, data, blob)

    def put(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None = None,
            *, content_type: str | None = None, condition: WriteCondition | None = None) -> dict[str, Any]:
        if condition is None:  # providers outside this package may not take the keyword
            return self.provider.write(validate_key(key), data, metadata, content_type=content_type)
        return self.provider.write(validate_key(key), data, metadata, content_type=content_type, condition=condition)

    def delete(self, key: str) -> bool:
        """Delete one object; False when there was none. A key that only names a prefix is
        refused: whole executions go through ``execution delete``."""
        validate_key(key)
        if not self.provider.exists(key):
            if next(iter(self.provider.list(key + "/", limit=1)), None) is not None:
                raise Conflict(PREFIX_NOT_OBJECT.format(key=key))
            self.provider.delete(key)  # metadata a delete killed mid-way left behind, if any
            return False
        self.provider.delete(key)
        return True

    # -- executions ----------------------------------------------------------

    def execution(self, execution_id: str) -> Execution:
        return executions.get_execution(self.provider, execution_id)

    def deletion_state(self, execution_id: str) -> tuple[str | None, dict[str, Any] | None]:
        """``deleting``, ``deleted`` or None (alive or unknown), with the deletion record
        when read: what a long reader of an execution checks as it goes."""
        return executions.deletion_state(self.provider, execution_id)

    def set_execution_status(self, execution_id: str, status: str, *, strict: bool = False) -> Execution:
        return executions.set_status(self.provider, execution_id, status, strict=strict)

    def executions(self, *, limit: int | None = None, cursor: str | None = None,
                   status: str | Sequence[str] | None = None, since: str | None = None,
                   until: str | None = None) -> ExecutionPage:
        """A page of executions, newest first: ``{"executions": [rows], "next_cursor"}``;
        without ``limit``, every one (``next_cursor`` null)."""
        if limit is not None and not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
        rows = executions.iter_rows(self.provider, after=decode_place(cursor) if cursor else None,
                                    expected=None if limit is None else limit + 1,
                                    **execution_filters(status, since, until))
        page = list(itertools.islice(rows, None if limit is None else limit + 1))
        more = limit is not None and len(page) > limit
        page = page[:limit]
        return {"executions": [row for _place, row in page],
                "next_cursor": encode_cursor(page[-1][0]) if more else None}

    def iter_executions(self, *, cursor: str | None = None, status: str | Sequence[str] | None = None,
                        since: str | None = None, until: str | None = None) -> Iterator[dict[str, Any]]:
        """Every execution, newest first, streamed as the listing goes (filters checked now)."""
        rows = executions.iter_rows(self.provider, after=decode_place(cursor) if cursor else None,
                                    **execution_filters(status, since, until))
        return (row for _place, row in rows)

    def execution_objects(self, execution_id: str, **filters: Any) -> Iterator[ObjectInfo]:
        return self.iter_objects(execution_prefix(execution_id), **filters)

    def fsck(self, prefix: str = "", *, repair: bool = False, grace: float | None = None,
             verify: bool = False, accept_changed: bool = False) -> FsckReport:
        """What crashes left under ``prefix``, repaired on request (see ``factflow_storage.fsck``).
        ``accept_changed`` (implies ``verify``) keeps the new bytes of objects changed in place."""
        from factflow_storage import fsck, lineage_index

        validate_prefix(prefix)
        check = getattr(self.provider, "fsck", None)
        if check is None:
            raise BadRequest(f"{type(self.provider).__name__} has no consistency check")
        if accept_changed and not hasattr(self.provider, "settle_changed"):
            raise BadRequest("--accept-changed needs a filesystem store: on S3 an object whose bytes "
                               "changed already shows its old checksum as stale_checksum")
        verify = verify or accept_changed
        grace = fsck.DEFAULT_GRACE if grace is None else min(grace, fsck.MAX_GRACE)
        findings = itertools.chain(check(prefix, repair=repair, grace=grace),
                                   lineage_index.check_index(self.provider, prefix, repair=repair),
                                   fsck.verify(self.provider, prefix, repair=repair, accept=accept_changed) if verify else ())
        if not prefix:  # the whole store: its execution index too
            from factflow_storage import execution_index_check

            findings = itertools.chain(findings, execution_index_check.check(self.provider, repair=repair, grace=grace))
        return cast(FsckReport, fsck.report(findings, prefix=prefix, repair=repair, grace=grace))

    # -- retention (factflow_storage.retention) ------------------------------

    def delete_executions(self, execution_ids: Sequence[str], *, confirm: bool = False,
                          force: bool = False) -> DeletionPlan:
        from factflow_storage.retention.delete import delete_executions

        return cast(DeletionPlan, delete_executions(self.provider, execution_ids, confirm=confirm, force=force))

    def prune(self, *, older_than: float, statuses: str | Sequence[str] | None = None, keep: int = 0,
              confirm: bool = False) -> PrunePlan:
        from factflow_storage.retention.prune import prune

        return cast(PrunePlan, prune(self.provider, older_than=older_than, statuses=statuses, keep=keep,
                                     confirm=confirm))

    def execution_deps(self, execution_id: str) -> Dependencies:
        from factflow_storage.retention.prune import dependencies

        return cast(Dependencies, dependencies(self.provider, execution_id))

    def deletions(self) -> list[dict[str, Any]]:
        from factflow_storage.retention.delete import list_deletions

        return list_deletions(self.provider)

    def execution_exists(self, execution_id: str) -> bool:
        """A record, or at least one object: writers may write before they register."""
        if self.provider.read_execution(execution_id) is not None:
            return True
        return next(iter(self.provider.list(execution_prefix(execution_id), limit=1)), None) is not None

    # -- copies (factflow_storage.copying) ---------------------------------------

    def copy(self, request: Mapping[str, Any]) -> CopySummary:
        """Copy executions (or a prefix) to a destination the operator named in the settings."""
        from factflow_storage.copying.named import copy_named

        return cast(CopySummary, copy_named(self.provider, request))

    # -- watch -----------------------------------------------------------------

    def watch(self, execution_ids: Sequence[str], *, route_id: str | None = None, stage: str | None = None,
              extension: str | Sequence[str] | None = None, last_event_id: str | None = None,
              timeout: float | None = None) -> Iterator[Event | None]:
        from factflow_storage.watch.stream import watch_events

        return watch_events(self.provider, execution_ids, route_id=route_id, stage=stage, extension=extension,
                            last_event_id=last_event_id, timeout=timeout)  # type: ignore[return-value]  # no counts: replay="events"

    def watch_counted(self, execution_ids: Sequence[str], *, route_id: str | None = None, stage: str | None = None,
                      extension: str | Sequence[str] | None = None, last_event_id: str | None = None,
                      timeout: float | None = None) -> Iterator[Event | CountsEvent | None]:
        """``watch`` from the current state: what the executions hold as one ``CountsEvent``,
        then only new writes (a ``last_event_id`` resumes as ``watch`` does)."""
        from factflow_storage.watch.stream import watch_events

        return watch_events(self.provider, execution_ids, route_id=route_id, stage=stage, extension=extension,
                            last_event_id=last_event_id, timeout=timeout, replay="counts")

    # -- for server-side jobs --------------------------------------------------

    @property
    def records(self) -> RecordStore:
        """Where server-side jobs keep their records (``_factflow/`` in this storage)."""
        return self.provider

    # -- operator tools (factflow_storage.tools) --------------------------------

    def execution_graph(self, execution_id: str) -> ExecutionGraph:
        from factflow_storage.tools.graph import execution_graph

        return cast(ExecutionGraph, execution_graph(self, self.provider, execution_id))

    def lineage(self, key: str, *, depth: int | None = None, children: bool = False) -> LineageNode:
        from factflow_storage.tools.lineage import DEFAULT_DEPTH, lineage

        tree = lineage(self, self.provider, key, depth=DEFAULT_DEPTH if depth is None else depth, children=children)
        return cast(LineageNode, tree)

    def diff(self, execution_a: str, execution_b: str, *, route_id: str | None = None,
             content: bool = False) -> Iterator[dict[str, Any]]:
        from factflow_storage.tools.diff import diff_executions

        return diff_executions(self, execution_a, execution_b, route_id=route_id, content=content)

    # Archive jobs live in the server (``factflow serve``), which owns their packers and
    # limits; in process, ``download`` copies objects directly and never asks for one.
    def prepare_archive(self, request: Mapping[str, Any]) -> ArchiveJob:
        raise BadRequest(_NO_ARCHIVES)

    def archive_status(self, job_id: str) -> ArchiveJob:
        raise BadRequest(_NO_ARCHIVES)

    def open_archive(self, job_id: str) -> BinaryIO:
        raise BadRequest(_NO_ARCHIVES)

    def delete_archive(self, job_id: str) -> None:
        raise BadRequest(_NO_ARCHIVES)

    def open_archive_stream(self, request: Mapping[str, Any]) -> BinaryIO:
        raise BadRequest(_NO_ARCHIVES)

    @property
    def read_slots(self) -> int | None:
        """Object reads and listings a server should run at once (``BaseProvider.read_slots``)."""
        return getattr(self.provider, "read_slots", None)

    def before_serving(self) -> None:
        """Let the provider prepare for a server's many threads (``BaseProvider.before_serving``)."""
        prepare = getattr(self.provider, "before_serving", None)
        if prepare is not None:
            prepare()

    def health(self) -> Health:
        self.provider.check()
        return {"status": "ok", "storage": self.provider.uri}

    def close(self) -> None:
        self.provider.close()

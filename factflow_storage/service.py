"""The service layer: what the CLI and the HTTP API both call, so they behave the same
by construction. Results are plain JSON-ready values; rows stream as generators.

``RemoteService`` (``factflow_storage.client``) offers the same methods over HTTP, which
is how the CLI's ``--api`` mode prints exactly what direct mode prints.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from factflow_storage import executions
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
from factflow_storage.protocol import ObjectInfo, ObjectStream, PrefixInfo, StorageProtocol

if TYPE_CHECKING:
    from factflow_storage.interface import RecordStore
    from factflow_storage.watch.events import Event

DEFAULT_PAGE = 100
MAX_PAGE = 1000
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
    def __init__(self, provider: StorageProtocol):
        self.provider = provider

    # -- listings ------------------------------------------------------------

    def iter_objects(self, prefix: str = "", *, start_after: str | None = None,
                     route_id: str | None = None, stage: str | None = None,
                     extension: str | Sequence[str] | None = None) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` that pass the filters, in key order, streamed."""
        validate_prefix(prefix)
        extensions = split_extensions(extension)
        routes, stages = (route_id,) if route_id else (), (stage,) if stage else ()
        for info in self.provider.list(narrow_prefix(prefix, route_id, stage), start_after=start_after):
            if key_matches(info.key, routes, stages, extensions):
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
                  limit: int = DEFAULT_PAGE, cursor: str | None = None, offset: int = 0) -> dict[str, Any]:
        """One page of the list API: ``{"objects", "common_prefixes", "next_cursor"}``."""
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
        if offset < 0:
            raise BadRequest("offset must not be negative")
        if delimiter not in (None, "", "/"):
            raise BadRequest("delimiter must be '/'")
        start_after = decode_cursor(cursor) if cursor else None
        if delimiter:
            entries: Iterator[ObjectInfo | PrefixInfo] = self._browse_entries(prefix, start_after, route_id, stage, extension)
        else:
            entries = self.iter_objects(prefix, start_after=start_after, route_id=route_id, stage=stage,
                                        extension=extension)
        page = list(itertools.islice(entries, offset, offset + limit + 1))
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
            "next_cursor": encode_cursor(last.key if isinstance(last, ObjectInfo) else last.prefix)
            if more and last else None,
        }

    def _browse_entries(self, prefix: str, start_after: str | None, route_id: str | None,
                        stage: str | None, extension: str | None) -> Iterator[ObjectInfo | PrefixInfo]:
        validate_prefix(prefix)
        extensions = split_extensions(extension)
        for entry in self.provider.browse(narrow_prefix(prefix, route_id, stage), start_after=start_after):
            if isinstance(entry, ObjectInfo) and not key_matches(entry.key, extensions=extensions):
                continue
            yield entry

    def browse(self, prefix: str = "", *, start_after: str | None = None) -> dict[str, Any]:
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
            *, content_type: str | None = None) -> dict[str, Any]:
        return self.provider.write(validate_key(key), data, metadata, content_type=content_type)

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

    def execution(self, execution_id: str) -> dict[str, Any]:
        return executions.get_execution(self.provider, execution_id)

    def set_execution_status(self, execution_id: str, status: str, *, strict: bool = False) -> dict[str, Any]:
        return executions.set_status(self.provider, execution_id, status, strict=strict)

    def executions(self) -> list[dict[str, Any]]:
        return executions.list_executions(self.provider)

    def execution_objects(self, execution_id: str, **filters: Any) -> Iterator[ObjectInfo]:
        return self.iter_objects(execution_prefix(execution_id), **filters)

    def fsck(self, prefix: str = "", *, repair: bool = False, grace: float | None = None) -> dict[str, Any]:
        """What crashes left under ``prefix``, repaired on request (see ``factflow_storage.fsck``)."""
        from factflow_storage import fsck

        validate_prefix(prefix)
        check = getattr(self.provider, "fsck", None)
        if check is None:
            raise BadRequest(f"{type(self.provider).__name__} has no consistency check")
        grace = fsck.DEFAULT_GRACE if grace is None else min(grace, fsck.MAX_GRACE)
        return fsck.report(check(prefix, repair=repair, grace=grace), prefix=prefix, repair=repair, grace=grace)

    # -- retention (factflow_storage.retention) ------------------------------

    def delete_executions(self, execution_ids: Sequence[str], *, confirm: bool = False,
                          force: bool = False) -> dict[str, Any]:
        from factflow_storage.retention.delete import delete_executions

        return delete_executions(self.provider, execution_ids, confirm=confirm, force=force)

    def prune(self, *, older_than: float, statuses: str | Sequence[str] | None = None, keep: int = 0,
              confirm: bool = False) -> dict[str, Any]:
        from factflow_storage.retention.prune import prune

        return prune(self.provider, older_than=older_than, statuses=statuses, keep=keep, confirm=confirm)

    def execution_deps(self, execution_id: str) -> dict[str, Any]:
        from factflow_storage.retention.prune import dependencies

        return dependencies(self.provider, execution_id)

    def deletions(self) -> list[dict[str, Any]]:
        from factflow_storage.retention.delete import list_deletions

        return list_deletions(self.provider)

    def execution_exists(self, execution_id: str) -> bool:
        """A record, or at least one object: writers may write before they register."""
        if self.provider.read_execution(execution_id) is not None:
            return True
        return next(iter(self.provider.list(execution_prefix(execution_id), limit=1)), None) is not None

    # -- watch -----------------------------------------------------------------

    def watch(self, execution_ids: Sequence[str], *, route_id: str | None = None, stage: str | None = None,
              extension: str | Sequence[str] | None = None, last_event_id: str | None = None,
              timeout: float | None = None) -> Iterator[Event | None]:
        from factflow_storage.watch.stream import watch_events

        return watch_events(self.provider, execution_ids, route_id=route_id, stage=stage, extension=extension,
                            last_event_id=last_event_id, timeout=timeout)

    # -- for server-side jobs --------------------------------------------------

    @property
    def records(self) -> RecordStore:
        """Where server-side jobs keep their records (``_factflow/`` in this storage)."""
        return self.provider

    # -- operator tools (factflow_storage.tools) --------------------------------

    def du(self, prefix: str = "", *, execution_id: str | None = None, depth: int | None = None) -> dict[str, Any]:
        from factflow_storage.tools.du import disk_usage

        return disk_usage(self, prefix, execution_id=execution_id, depth=depth)

    def lineage(self, key: str, *, depth: int | None = None, children: bool = False) -> dict[str, Any]:
        from factflow_storage.tools.lineage import DEFAULT_DEPTH, lineage

        return lineage(self, key, depth=DEFAULT_DEPTH if depth is None else depth, children=children)

    def diff(self, execution_a: str, execution_b: str, *, route_id: str | None = None,
             content: bool = False) -> Iterator[dict[str, Any]]:
        from factflow_storage.tools.diff import diff_executions

        return diff_executions(self, execution_a, execution_b, route_id=route_id, content=content)

    # Archive jobs live in the server (``factflow serve``), which owns their packers and
    # limits; in process, ``download`` copies objects directly and never asks for one.
    def prepare_archive(self, request: Mapping[str, Any]) -> dict[str, Any]:
        raise BadRequest(_NO_ARCHIVES)

    def archive_status(self, job_id: str) -> dict[str, Any]:
        raise BadRequest(_NO_ARCHIVES)

    def open_archive(self, job_id: str) -> BinaryIO:
        raise BadRequest(_NO_ARCHIVES)

    def delete_archive(self, job_id: str) -> None:
        raise BadRequest(_NO_ARCHIVES)

    def health(self) -> dict[str, Any]:
        self.provider.check()
        return {"status": "ok", "storage": self.provider.uri}

    def close(self) -> None:
        self.provider.close()

"""``factflow storage download``: plan, then fetch directly or through an archive job.

Planning lists the execution (keys and sizes only) and compares each object with what
DIR already holds: a file of another size is fetched again, one of the same size is
checked against the object's sha256 (a metadata read each), or, for an object another
tool wrote (no sha256), its ETag or modification time against those its sidecar
recorded, so a re-run after an interruption fetches only what is missing or differs.
Keys a filesystem cannot hold together (an object ``a`` and an object ``a/b``) follow
one rule in both modes: ``a`` is written, ``a/b`` is skipped and reported. Direct mode
copies the objects with a thread pool; API mode has the server pack them (all of them,
or just the missing keys) into a zip it sends while packing, and extracts the zip as it
arrives. Both write the same tree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson

from factflow_storage.download.extract import extract_archive
from factflow_storage.download.tree import OutputTree, file_sha256
from factflow_storage.zipformat.layout import sidecar_bytes
from factflow_storage.zipformat.zipreader import INCOMPLETE, UnsafeArchive
from factflow_storage.errors import NotFound, StorageError, Unavailable
from factflow_storage.interface import Service
from factflow_storage.keys import execution_prefix, key_matches
from factflow_storage.metadata import CHANGE_CHECK, CHECK_ETAG, CHECK_MTIME

DEFAULT_JOBS = 32
BULK_METADATA = 64
BROKEN_OFF = "the server's archive stream broke off before its end (its log says why)"


class Progress(Protocol):
    """Where a download reports how far it is (the CLI passes its progress bar)."""

    def start(self, phase: str, objects_total: int, bytes_total: int) -> None: ...

    def advance(self, objects: int = 0, nbytes: int = 0) -> None: ...

    def update(self, objects: int, nbytes: int, objects_total: int | None = None) -> None: ...

    def finish(self) -> None: ...


class Silent:
    def start(self, phase: str, objects_total: int, bytes_total: int) -> None:
        pass

    def advance(self, objects: int = 0, nbytes: int = 0) -> None:
        pass

    def update(self, objects: int, nbytes: int, objects_total: int | None = None) -> None:
        pass

    def finish(self) -> None:
        pass


class Interrupted(StorageError):
    error_code = "interrupted"


@dataclass(frozen=True)
class Selection:
    execution_id: str
    routes: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    include_metadata: bool = True

    def matches(self, key: str) -> bool:
        if not key.startswith(execution_prefix(self.execution_id)):
            return False
        return key_matches(key, self.routes, self.stages)


@dataclass
class Summary:
    execution_id: str
    output_dir: str
    mode: str
    objects: int = 0  # objects selected
    fetched: int = 0  # objects written by this run
    skipped: int = 0  # objects already present with the right sha256
    sidecars: int = 0  # sidecars written by this run
    bytes: int = 0  # bytes of the objects written
    failed: list[dict[str, str]] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)  # skipped: a filesystem cannot hold them

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def unchanged_without_checksum(blob: dict[str, Any], sidecar: bytes | None) -> bool:
    """For an object with no sha256 (another tool wrote it): whether the sidecar of the
    last download recorded the same size and ETag, or modification time, as it has now."""
    check = blob.get(CHANGE_CHECK)
    if sidecar is None or check not in (CHECK_ETAG, CHECK_MTIME):
        return False
    try:
        before = orjson.loads(sidecar)
    except orjson.JSONDecodeError:
        return False
    field = "etag" if check == CHECK_ETAG else "created_at"
    return isinstance(before, dict) and before.get(CHANGE_CHECK) == check and \
        before.get("content_length") == blob.get("content_length") and \
        before.get(field) is not None and before.get(field) == blob.get(field)


def split_conflicts(entries: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], list[dict[str, str]]]:
    """Entries a filesystem can hold together, and those it cannot: an object below a key
    that is itself an object (``a/b`` below ``a``) is skipped, whatever the mode."""
    objects = {key for key, _ in entries}
    kept, skipped = [], []
    for key, size in entries:
        parent = next((key[:i] for i, char in enumerate(key) if char == "/" and key[:i] in objects), None)
        if parent is None:
            kept.append((key, size))
        else:
            skipped.append({"key": key, "reason": f"skipped {key!r}: the object {parent!r} is written at the "
                            "path its directory would need, and a filesystem cannot hold both"})
    return kept, skipped


def _checksum_hex(blob: dict[str, Any]) -> str | None:
    checksum = blob.get("checksum")
    return checksum[7:] if isinstance(checksum, str) and checksum.startswith("sha256:") else None


class Download:
    def __init__(self, service: Service, tree: OutputTree, selection: Selection, *, jobs: int = DEFAULT_JOBS,
                 progress: Progress | None = None, remote: bool = False):
        self.service = service
        self.tree = tree
        self.selection = selection
        self.jobs = jobs
        self.progress: Progress = progress or Silent()
        self.remote = remote
        self.summary = Summary(selection.execution_id, tree.root, "api" if remote else "direct")
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # -- planning ------------------------------------------------------------

    def _listing(self) -> list[tuple[str, int]]:
        sel = self.selection
        route = sel.routes[0] if len(sel.routes) == 1 else None
        stage = sel.stages[0] if len(sel.stages) == 1 else None
        rows = self.service.list_rows(execution_prefix(sel.execution_id), route_id=route, stage=stage)
        entries = [(row["key"], row["size"]) for row in rows if sel.matches(row["key"])]
        if not entries:
            self.service.execution(sel.execution_id)  # NotFound for an unknown execution
        return entries

    def plan(self) -> list[tuple[str, int]]:
        """The objects to fetch; fixes stale sidecars of objects that are already right."""
        entries = self._listing()
        self.summary.objects = len(entries)
        entries, self.summary.conflicts = split_conflicts(entries)
        candidates = [(key, size) for key, size in entries if self.tree.local_size(self.tree.target(key)) == size]
        if not candidates:
            return entries
        self.progress.start("checking", len(candidates), sum(size for _, size in candidates))
        blobs = self._bulk_metadata(candidates)
        with ThreadPoolExecutor(self.jobs) as pool:
            present = {key for key in pool.map(lambda entry: self._check_present(entry, blobs), candidates) if key}
        self.progress.finish()
        self.summary.skipped = len(present)
        return [(key, size) for key, size in entries if key not in present]

    def _bulk_metadata(self, candidates: list[tuple[str, int]]) -> dict[str, dict[str, Any]]:
        """Over HTTP, many metadata reads cost less as listing pages (the server reads them
        concurrently) than as one request each."""
        if not self.remote or len(candidates) < BULK_METADATA:
            return {}
        sel = self.selection
        route = sel.routes[0] if len(sel.routes) == 1 else None
        wanted = {key for key, _ in candidates}
        rows = self.service.list_rows(execution_prefix(sel.execution_id), with_metadata=True, route_id=route)
        return {row["key"]: row["metadata"] for row in rows if row["key"] in wanted}

    def _check_present(self, entry: tuple[str, int], blobs: dict[str, dict[str, Any]]) -> str | None:
        key, size = entry
        try:
            blob = blobs.get(key) or self.service.metadata(key)
            expected = _checksum_hex(blob)
            if expected is not None:
                same = file_sha256(self.tree.target(key)) == expected
            else:
                same = unchanged_without_checksum(blob, self.tree.read_small(self.tree.sidecar_target(key)))
            if same and self.selection.include_metadata:
                wanted = sidecar_bytes(blob)
                path = self.tree.sidecar_target(key)
                if self.tree.read_small(path) != wanted:
                    self.tree.write_bytes(path, key, wanted)
                    self._count_sidecars()
        except NotFound:
            same = False
        self.progress.advance(1, size)
        return key if same else None

    # -- fetching ------------------------------------------------------------

    def run(self) -> Summary:
        wanted = self.plan()
        if wanted:
            try:
                if self.remote:
                    self._through_archive(wanted)
                else:
                    self.progress.start("downloading", len(wanted), sum(size for _, size in wanted))
                    self._direct(wanted)
            finally:
                self.progress.finish()
        if self.summary.failed:
            first = self.summary.failed[0]
            raise StorageError(f"{len(self.summary.failed)} of {len(wanted)} objects failed; "
                               f"first: {first['key']}: {first['error']}")
        return self.summary

    def _direct(self, wanted: list[tuple[str, int]]) -> None:
        """``jobs`` threads, each taking the next key until none is left: one loop per
        thread rather than a future per object, whose bookkeeping cost, for small objects,
        about what fetching them did."""
        keys = iter([key for key, _ in wanted])
        take = threading.Lock()
        crashed: list[BaseException] = []

        def work() -> None:
            try:
                while not self._stop.is_set():
                    with take:
                        key = next(keys, None)
                    if key is None:
                        return
                    key, error = self._copy_one(key)
                    if error:
                        with self._lock:
                            self.summary.failed.append({"key": key, "error": error})
            except BaseException as err:  # noqa: BLE001 - raised again by the main thread
                crashed.append(err)
                self._stop.set()

        threads = [threading.Thread(target=work, name=f"download-{n}", daemon=True)
                   for n in range(min(self.jobs, len(wanted)))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:
            # Ctrl+C: stop the copies under way at their next chunk (their temp files go;
            # finished files stay for the next run), and take no new key.
            self._stop.set()
            for thread in threads:
                thread.join()
            raise
        if crashed:
            raise crashed[0]

    def _copy_one(self, key: str) -> tuple[str, str | None]:
        try:
            with self.service.open(key) as stream:
                blob = stream.metadata
                staged = self.tree.stage()
                try:
                    for chunk in stream:
                        if self._stop.is_set():
                            raise Interrupted("stopped")
                        staged.write(chunk)
                        self.progress.advance(0, len(chunk))
                except BaseException:
                    staged.discard()
                    raise
            expected = _checksum_hex(blob)
            if staged.size != stream.length or (expected and staged.sha256_hex != expected):
                staged.discard()
                return key, "the bytes read do not match the object's size and sha256"
            self.tree.commit(staged, self.tree.target(key), key)
            self._wrote(key, staged.size)
            if self.selection.include_metadata:
                self.tree.write_bytes(self.tree.sidecar_target(key), key, sidecar_bytes(blob))
                self._count_sidecars()
        except StorageError as err:
            return key, " ".join(str(err).split())
        return key, None

    def _wrote(self, key: str, size: int) -> None:
        with self._lock:
            self.summary.fetched += 1
            self.summary.bytes += size
        self.progress.advance(1, 0)

    def _count_sidecars(self, count: int = 1) -> None:
        with self._lock:
            self.summary.sidecars += count

    def _through_archive(self, wanted: list[tuple[str, int]]) -> None:
        sel = self.selection
        request: dict[str, Any] = {"execution_id": sel.execution_id, "include_metadata": sel.include_metadata}
        if sel.routes:
            request["routes"] = list(sel.routes)
        if sel.stages:
            request["stages"] = list(sel.stages)
        keys = None
        if len(wanted) < self.summary.objects:
            keys = {key for key, _ in wanted}
            request["keys"] = sorted(keys)
        self.progress.start("downloading", len(wanted), sum(size for _, size in wanted))
        accept: Callable[[str], bool] = (lambda key: key in keys) if keys is not None else sel.matches
        received: set[str] = set()

        def on_object(key: str, size: int) -> None:
            received.add(key)
            self._wrote(key, size)

        try:
            with self.service.open_archive_stream(request) as response:
                done = extract_archive(response, self.tree, accept,
                                       on_bytes=lambda n: self.progress.advance(0, n), on_object=on_object)
        except (Unavailable, UnsafeArchive) as err:
            if isinstance(err, UnsafeArchive) and not str(err).startswith(INCOMPLETE):
                raise
            raise StorageError(f"{BROKEN_OFF} after {len(received)} of {len(wanted)} objects; files already "
                               "written are kept (run the download again to fetch the rest)") from err
        self._count_sidecars(done.sidecars)
        for key in sorted({key for key, _ in wanted} - received):
            self.summary.failed.append({"key": key, "error": "not in the archive (deleted since listed?)"})

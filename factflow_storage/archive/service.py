"""Archive jobs: prepare, status, download, delete, and streams. What the HTTP routes call.

A prepared job is packed by a thread of the replica that accepted it; its state lives in
storage (``jobs``), so any replica answers status, download and delete. A job's thread
runs the packer and, beside it, a heartbeat that rewrites the status record and watches
for a cancellation written by any replica.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, BinaryIO, cast

import orjson

from factflow_storage import metadata as clock
from factflow_storage.archive.jobs import (CANCELLED, FAILED, PREPARING, READY, STALE_ERROR, JobStore,
                                           archive_name, status_view)
from factflow_storage.archive.limits import ArchiveLimits
from factflow_storage.archive.pipe import Pipe
from factflow_storage.archive.request import ArchiveRequest
from factflow_storage.archive.stream import ArchiveStream
from factflow_storage.archive.worker import Cancelled, Progress, run_packer
from factflow_storage.errors import Busy, Conflict, Deleted, NotFound, StorageError, TooLarge
from factflow_storage.executions import refuse_deleting
from factflow_storage.service import StorageService
from factflow_storage.settings import DEFAULT_ARCHIVE_TTL, load_settings

TTL_ENV = "FACTFLOW_ARCHIVE_TTL"
DEFAULT_TTL = DEFAULT_ARCHIVE_TTL
STALE_AFTER = 60.0
HEARTBEAT = 0.5
SWEEP_EVERY = 60.0


def ttl_from_env(env: dict[str, str] | None = None) -> float:
    """The archive TTL of the settings in force (``Settings.archive_ttl_seconds``), for a
    server built without settings of its own."""
    return load_settings(env=env).archive_ttl_seconds()


class ArchiveJobs:
    def __init__(self, service: StorageService, *, ttl: float = DEFAULT_TTL, stale_after: float = STALE_AFTER,
                 heartbeat: float = HEARTBEAT, limits: ArchiveLimits | None = None):
        self.service = service
        self.store = JobStore(service.records, ttl=ttl, stale_after=stale_after)
        self.limits = limits or ArchiveLimits()
        self._heartbeat = heartbeat
        self._running: dict[str, Progress] = {}
        self._streams = 0  # archives packed straight into an answer (``archive.stream``)
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        # What this replica made and serves (see ``archive.limits``).
        self._jobs_by_request: dict[bytes, str] = {}
        self._seen: dict[str, float] = {}
        self._ready_bytes: dict[str, int] = {}
        self._downloads: dict[str, int] = {}
        self._reaper: threading.Thread | None = None

    # -- the four operations -------------------------------------------------

    def _parse(self, body: Any) -> ArchiveRequest:
        """The request, of an execution that exists and is not being deleted."""
        request = ArchiveRequest.parse(body)
        try:
            record = self.service.execution(request.execution_id)
        except NotFound:
            record = None  # writers may write before they register: objects alone make an execution
        refuse_deleting(record, request.execution_id)
        if record is None and not self.service.execution_exists(request.execution_id):
            raise NotFound(f"no execution {request.execution_id!r}")
        return request

    def _packing(self) -> int:
        return len(self._running) + self._streams

    def prepare(self, body: Any) -> dict[str, Any]:
        request = self._parse(body)
        self._sweep_now_and_then()
        fingerprint = orjson.dumps(request.to_json(), option=orjson.OPT_SORT_KEYS)
        with self._lock:
            shared = self._shared_job(fingerprint)
            if shared is not None:
                return shared
            if self._packing() >= self.limits.max_jobs:
                raise Busy(f"{self._packing()} archive jobs are packing, the limit; retry later")
            if self._held_bytes() >= self.limits.max_bytes:
                raise Busy("the archives held reach the limit of "
                           f"{self.limits.max_bytes} bytes; retry once some are downloaded or expire")
            return self._start(request, fingerprint)

    def _shared_job(self, fingerprint: bytes) -> dict[str, Any] | None:
        """The live job of an identical request, if any: identical requests share one."""
        job_id = self._jobs_by_request.get(fingerprint)
        if job_id is None:
            return None
        try:
            record = self.store.load(job_id)
        except NotFound:
            record = None
        if record is None or record["status"] not in (PREPARING, READY):
            del self._jobs_by_request[fingerprint]
            return None
        self._seen[job_id] = time.monotonic()
        return status_view(record)

    def _held_bytes(self) -> int:
        return sum(self._ready_bytes.values()) + sum(p.bytes_packed for p in self._running.values())

    def _start(self, request: ArchiveRequest, fingerprint: bytes) -> dict[str, Any]:
        job_id = uuid.uuid4().hex
        record = {"job_id": job_id, "status": PREPARING, "execution_id": request.execution_id,
                  "total": len(request.keys) if request.keys is not None else 0, "processed": 0,
                  "bytes_packed": 0, "filename": request.filename, "file_size": None, "error": None,
                  "created_at": clock.now_rfc3339(), "expires_at": None}
        self.store.write(record)
        self.store.write_request(job_id, request.to_json())
        progress = Progress()
        progress.byte_budget = self.limits.max_bytes - self._held_bytes()
        self._running[job_id] = progress
        self._jobs_by_request[fingerprint] = job_id
        self._seen[job_id] = time.monotonic()
        self._start_reaper()
        threading.Thread(target=self._run, args=(record, request, progress), daemon=True,
                         name=f"archive-{job_id[:8]}").start()
        return status_view(record)

    def open_stream(self, body: Any) -> ArchiveStream:
        """The archive of ``body`` (a prepare request) packed as it is read; it takes a
        packing slot until closed."""
        request = self._parse(body)
        with self._lock:
            if self._packing() >= self.limits.max_jobs:
                raise Busy(f"{self._packing()} archive jobs are packing, the limit; retry later")
            self._streams += 1
        return ArchiveStream(self.service, request, on_close=self._stream_done)

    def _stream_done(self) -> None:
        with self._lock:
            self._streams -= 1

    def status(self, job_id: str) -> dict[str, Any]:
        record = self.store.load(job_id)
        self._seen[job_id] = time.monotonic()
        return status_view(record)

    def open_download(self, job_id: str) -> tuple[BinaryIO, dict[str, Any]]:
        """The ready archive, as a stream, and its status record. Call ``download_done``
        when the stream is closed: a job is never reaped while it is being sent."""
        record = self.store.load(job_id)
        self._seen[job_id] = time.monotonic()
        if record["status"] != READY:
            raise Conflict(f"archive job {job_id!r} is {record['status']}, not ready"
                           + (f": {record['error']}" if record.get("error") else ""))
        self._refuse_deleted(record.get("execution_id"))
        try:
            return self.service.records.open_record(archive_name(job_id)), record
        except NotFound:
            raise NotFound(f"the archive of job {job_id!r} is gone (it expired or was deleted)") from None

    def _refuse_deleted(self, execution_id: str | None) -> None:
        """A deleted execution's archive is never served, even one its job finished
        after the deletion (the deletion's cancel marker normally stops it first)."""
        if not execution_id:
            return
        try:
            refuse_deleting(self.service.execution(execution_id), execution_id)
        except Deleted as err:
            raise NotFound(f"the archive is gone: {err}") from None
        except NotFound:
            pass  # writers may write without a record

    def download_started(self, job_id: str) -> None:
        with self._lock:
            self._downloads[job_id] = self._downloads.get(job_id, 0) + 1

    def download_done(self, job_id: str) -> None:
        with self._lock:
            self._downloads[job_id] = self._downloads.get(job_id, 1) - 1
            if self._downloads[job_id] <= 0:
                del self._downloads[job_id]
            self._seen[job_id] = time.monotonic()

    def delete(self, job_id: str) -> dict[str, Any]:
        """Cancel a job still preparing (its packer removes the partial archive and
        writes the final record); remove every trace of a finished one. ``deleted`` tells
        which happened. A job's files are removed only once no packer writes them."""
        record = self.store.load(job_id)
        stored = self.store.read(job_id) or record
        packing = stored["status"] == PREPARING and record.get("error") != STALE_ERROR
        if not packing:
            self.store.purge(job_id)
            self._forget(job_id)
            return {**status_view(record), "deleted": True}
        self.store.mark_cancelled(job_id)
        with self._lock:
            progress = self._running.get(job_id)
        if progress is not None:
            progress.cancel.set()
        record.update(status=CANCELLED, error="cancelled")
        return {**status_view(record), "deleted": False}

    # -- the job's thread ----------------------------------------------------

    def _run(self, record: dict[str, Any], request: ArchiveRequest, progress: Progress) -> None:
        job_id = record["job_id"]
        outcome: dict[str, Any] = {}
        packer = threading.Thread(target=self._pack, args=(job_id, request, progress, outcome), daemon=True)
        packer.start()
        try:
            while packer.is_alive():
                packer.join(self._heartbeat)
                if packer.is_alive():
                    self._beat(record, progress)
            if "error" not in outcome and self.store.is_cancelled(job_id):
                outcome["error"] = Cancelled("cancelled")
            self._finish(record, progress, outcome)
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _pack(self, job_id: str, request: ArchiveRequest, progress: Progress, outcome: dict[str, Any]) -> None:
        pipe = Pipe()
        stored: dict[str, BaseException] = {}

        def upload() -> None:
            try:
                # A Pipe reads like a file (read(n)), which is all put_record asks of a body.
                self.service.records.put_record(archive_name(job_id), cast(BinaryIO, pipe))
            except BaseException as err:  # noqa: BLE001 - handed to the writing side
                stored["error"] = err
                pipe.fail(err)

        uploader = threading.Thread(target=upload, daemon=True)
        uploader.start()
        try:
            outcome["size"] = run_packer(self.service, request, progress, pipe.write)
            pipe.close()
        except BaseException as err:  # noqa: BLE001 - recorded as the job's error
            outcome["error"] = stored.get("error", err)
            pipe.abort(err)
        uploader.join()
        if "error" not in outcome and "error" in stored:
            outcome["error"] = stored["error"]

    def _beat(self, record: dict[str, Any], progress: Progress) -> None:
        try:
            if not progress.cancel.is_set() and self.store.is_cancelled(record["job_id"]):
                progress.cancel.set()
            self._enforce_limits(record["job_id"], progress)
            record.update(total=progress.total or record["total"], processed=progress.processed,
                          bytes_packed=progress.bytes_packed)
            self.store.write(record)
        except StorageError:
            pass  # a missed beat is harmless; the next one, or the final write, catches up

    def _finish(self, record: dict[str, Any], progress: Progress, outcome: dict[str, Any]) -> None:
        job_id = record["job_id"]
        record.update(total=progress.total or record["total"], processed=progress.processed,
                      bytes_packed=progress.bytes_packed)
        error = outcome.get("error")
        if error is None and progress.byte_budget is not None and (outcome.get("size") or 0) > progress.byte_budget:
            progress.limit_error = TooLarge(f"the archive of {outcome['size']} bytes passes the byte limit on "
                                            f"archives held ({progress.byte_budget} bytes were left for it)")
        over_limit = progress.limit_error
        if over_limit is not None:
            error = over_limit
        if error is None:
            record.update(total=progress.processed, file_size=outcome["size"])
            self.store.finish(record, READY)
            with self._lock:
                self._ready_bytes[job_id] = outcome["size"] or 0
            return
        # The final record goes first: once the archive is gone, a client may delete the
        # job, and nothing written after that may bring it back.
        if over_limit is None and (isinstance(error, Cancelled) or progress.cancel.is_set()):
            self.store.finish(record, CANCELLED, "cancelled")
        else:
            self.store.finish(record, FAILED, " ".join(str(error).split()) or type(error).__name__)
        self.service.records.delete_record(archive_name(job_id))
        if progress.idle:
            self.store.purge(job_id)  # nobody is waiting for it: leave no trace
            self._forget(job_id)

    # -- limits --------------------------------------------------------------

    def _enforce_limits(self, job_id: str, progress: Progress) -> None:
        """From the heartbeat: stop a job nobody polls, or one that crosses the byte cap."""
        with self._lock:
            idle_for = time.monotonic() - self._seen.get(job_id, time.monotonic())
            held = self._held_bytes()
        if idle_for > self.limits.idle:
            progress.idle = True
            progress.cancel.set()
        elif held > self.limits.max_bytes:
            progress.limit_error = TooLarge(f"the archives held would pass the limit of {self.limits.max_bytes} bytes")
            progress.cancel.set()

    def _forget(self, job_id: str) -> None:
        with self._lock:
            for fingerprint, known in list(self._jobs_by_request.items()):
                if known == job_id:
                    del self._jobs_by_request[fingerprint]
            self._seen.pop(job_id, None)
            self._ready_bytes.pop(job_id, None)

    def _start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap_forever, daemon=True, name="archive-reaper")
            self._reaper.start()

    def _reap_forever(self) -> None:
        while True:
            time.sleep(max(0.2, min(self.limits.idle / 4, 5.0)))
            self.reap()

    def reap(self) -> None:
        """Remove ready archives nobody polled or downloaded for ``idle`` seconds."""
        now = time.monotonic()
        with self._lock:
            idle = [job_id for job_id in self._ready_bytes
                    if job_id not in self._downloads and now - self._seen.get(job_id, now) > self.limits.idle]
        for job_id in idle:
            try:
                self.store.purge(job_id)
            except StorageError:
                continue  # the next round tries again
            self._forget(job_id)

    def _sweep_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_EVERY:
            self._last_sweep = now
            try:
                self.store.sweep()
            except StorageError:
                pass

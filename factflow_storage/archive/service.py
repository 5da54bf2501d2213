"""Archive jobs: prepare, status, download, delete. What the HTTP routes call.

A prepared job is packed by a thread of the replica that accepted it; its state lives in
storage (``jobs``), so any replica answers status, download and delete. A job's thread
runs the packer and, beside it, a heartbeat that rewrites the status record and watches
for a cancellation written by any replica.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any, BinaryIO

from factflow_storage import metadata as clock
from factflow_storage.archive.jobs import (CANCELLED, FAILED, PREPARING, READY, STALE_ERROR, JobStore,
                                           archive_name, status_view)
from factflow_storage.archive.pipe import Pipe
from factflow_storage.archive.request import ArchiveRequest
from factflow_storage.archive.worker import Cancelled, Progress, run_packer
from factflow_storage.errors import Conflict, ConfigError, NotFound, StorageError
from factflow_storage.executions import refuse_deleting
from factflow_storage.keys import execution_prefix
from factflow_storage.service import StorageService
from factflow_storage.settings import parse_duration

TTL_ENV = "FACTFLOW_ARCHIVE_TTL"
DEFAULT_TTL = 3600.0
STALE_AFTER = 60.0
HEARTBEAT = 0.5
SWEEP_EVERY = 60.0


def ttl_from_env(env: dict[str, str] | None = None) -> float:
    """``FACTFLOW_ARCHIVE_TTL``: seconds, or a duration like ``30m``, ``2h``, ``1d``."""
    raw = (os.environ if env is None else env).get(TTL_ENV, "").strip().lower()
    if not raw:
        return DEFAULT_TTL
    try:
        value = parse_duration(raw)
    except ValueError:
        value = -1
    if value <= 0:
        raise ConfigError(f"{TTL_ENV} must be a positive duration like 3600, 30m or 2h, not {raw!r}")
    return value


class ArchiveJobs:
    def __init__(self, service: StorageService, *, ttl: float = DEFAULT_TTL, stale_after: float = STALE_AFTER,
                 heartbeat: float = HEARTBEAT):
        self.service = service
        self.store = JobStore(service.provider, ttl=ttl, stale_after=stale_after)
        self._heartbeat = heartbeat
        self._running: dict[str, Progress] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    # -- the four operations -------------------------------------------------

    def prepare(self, body: Any) -> dict[str, Any]:
        request = ArchiveRequest.parse(body)
        self._sweep_now_and_then()
        prefix = execution_prefix(request.execution_id)
        record = self.service.provider.read_execution(request.execution_id)
        refuse_deleting(record, request.execution_id)
        if record is None \
                and next(iter(self.service.provider.list(prefix, limit=1)), None) is None:
            raise NotFound(f"no execution {request.execution_id!r}")
        job_id = uuid.uuid4().hex
        record = {"job_id": job_id, "status": PREPARING, "execution_id": request.execution_id,
                  "total": len(request.keys) if request.keys is not None else 0, "processed": 0,
                  "bytes_packed": 0, "filename": request.filename, "file_size": None, "error": None,
                  "created_at": clock.now_rfc3339(), "expires_at": None}
        self.store.write(record)
        self.store.write_request(job_id, request.to_json())
        progress = Progress()
        with self._lock:
            self._running[job_id] = progress
        threading.Thread(target=self._run, args=(record, request, progress), daemon=True,
                         name=f"archive-{job_id[:8]}").start()
        return status_view(record)

    def status(self, job_id: str) -> dict[str, Any]:
        return status_view(self.store.load(job_id))

    def open_download(self, job_id: str) -> tuple[BinaryIO, dict[str, Any]]:
        """The ready archive, as a stream, and its status record."""
        record = self.store.load(job_id)
        if record["status"] != READY:
            raise Conflict(f"archive job {job_id!r} is {record['status']}, not ready"
                           + (f": {record['error']}" if record.get("error") else ""))
        try:
            return self.service.provider.open_record(archive_name(job_id)), record
        except NotFound:
            raise NotFound(f"the archive of job {job_id!r} is gone (it expired or was deleted)") from None

    def delete(self, job_id: str) -> dict[str, Any]:
        """Cancel a job still preparing (its packer removes the partial archive and
        writes the final record); remove every trace of a finished one. ``deleted`` tells
        which happened. A job's files are removed only once no packer writes them."""
        record = self.store.load(job_id)
        stored = self.store.read(job_id) or record
        packing = stored["status"] == PREPARING and record.get("error") != STALE_ERROR
        if not packing:
            self.store.purge(job_id)
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
                self.service.provider.put_record(archive_name(job_id), pipe)
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
        if error is None:
            record.update(total=progress.processed, file_size=outcome["size"])
            self.store.finish(record, READY)
            return
        # The final record goes first: once the archive is gone, a client may delete the
        # job, and nothing written after that may bring it back.
        if isinstance(error, Cancelled) or progress.cancel.is_set():
            self.store.finish(record, CANCELLED, "cancelled")
        else:
            self.store.finish(record, FAILED, " ".join(str(error).split()) or type(error).__name__)
        self.service.provider.delete_record(archive_name(job_id))

    def _sweep_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_EVERY:
            self._last_sweep = now
            try:
                self.store.sweep()
            except StorageError:
                pass

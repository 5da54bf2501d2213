"""Archive job records, kept in storage so every server replica over it can answer.

Under ``_factflow/jobs/``, per job:

- ``<id>.json``: the status record, rewritten by the replica packing the job about
  twice a second (a heartbeat: a record left ``preparing`` by a replica that stopped
  reads as ``failed`` once it is older than ``stale_after``);
- ``<id>.request.json``: what to pack (it may list many keys, so it is written once);
- ``<id>.zip``: the archive, once ready;
- ``<id>.cancel``: written by a DELETE of a job still preparing. Only DELETE writes it,
  so the packing replica's heartbeat can never overwrite a cancellation; it sees the
  marker, stops, and removes the partial archive.

Finished jobs (ready, failed, cancelled) expire ``ttl`` seconds after they finish; every
file of an expired job is removed the next time anyone looks at it or prepares a job.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

import orjson

from factflow_storage.errors import NotFound
from factflow_storage.metadata import format_time
from factflow_storage.interface import RecordStore

PREPARING, READY, FAILED, CANCELLED = "preparing", "ready", "failed", "cancelled"
FINISHED = (READY, FAILED, CANCELLED)
JOBS = "jobs/"
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
STATUS_FIELDS = ("job_id", "status", "total", "processed", "filename", "file_size", "bytes_packed",
                 "progress", "error", "execution_id", "created_at", "updated_at", "expires_at")
STALE_ERROR = "the server preparing this archive stopped before it was done"
SUFFIXES = (".zip", ".request.json", ".cancel", ".json")  # removal order: the record last


def record_name(job_id: str, suffix: str = ".json") -> str:
    return f"{JOBS}{job_id}{suffix}"


def archive_name(job_id: str) -> str:
    return record_name(job_id, ".zip")


def _timestamp(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def _at(seconds: float) -> str:
    return format_time(datetime.fromtimestamp(seconds, tz=timezone.utc))


class JobStore:
    def __init__(self, provider: RecordStore, *, ttl: float, stale_after: float):
        self.provider = provider
        self.ttl = ttl
        self.stale_after = stale_after

    def check_id(self, job_id: str) -> str:
        if not _JOB_ID.match(job_id):
            raise NotFound(f"no archive job {job_id!r}")
        return job_id

    # -- records -------------------------------------------------------------

    def write(self, record: dict[str, Any]) -> None:
        record["updated_at"] = _at(time.time())
        self.provider.put_record(record_name(record["job_id"]), orjson.dumps(record))

    def finish(self, record: dict[str, Any], status: str, error: str | None = None) -> None:
        record.update(status=status, error=error, expires_at=_at(time.time() + self.ttl))
        self.write(record)

    def _get(self, name: str) -> bytes | None:
        try:
            with self.provider.open_record(name) as body:
                return body.read()
        except NotFound:
            return None

    def read(self, job_id: str) -> dict[str, Any] | None:
        raw = self._get(record_name(self.check_id(job_id)))
        return None if raw is None else orjson.loads(raw)

    def read_request(self, job_id: str) -> dict[str, Any] | None:
        raw = self._get(record_name(job_id, ".request.json"))
        return None if raw is None else orjson.loads(raw)

    def write_request(self, job_id: str, request: dict[str, Any]) -> None:
        self.provider.put_record(record_name(job_id, ".request.json"), orjson.dumps(request))

    def is_cancelled(self, job_id: str) -> bool:
        return self._get(record_name(job_id, ".cancel")) is not None

    def mark_cancelled(self, job_id: str) -> None:
        self.provider.put_record(record_name(job_id, ".cancel"), b"{}")

    def purge(self, job_id: str) -> None:
        for suffix in SUFFIXES:
            self.provider.delete_record(record_name(job_id, suffix))

    # -- what clients see ----------------------------------------------------

    def effective(self, record: dict[str, Any], now: float | None = None) -> dict[str, Any]:
        """The record as it stands: cancelled by a marker, or failed when its packer is gone."""
        now = time.time() if now is None else now
        record = dict(record)
        if record["status"] == PREPARING:
            if self.is_cancelled(record["job_id"]):
                record.update(status=CANCELLED, error="cancelled")
            elif now - (_timestamp(record.get("updated_at")) or now) > self.stale_after:
                record.update(status=FAILED, error=STALE_ERROR)
        elif record["status"] == READY and self.is_cancelled(record["job_id"]):
            record.update(status=CANCELLED, error="cancelled")
        return record

    def expired(self, record: dict[str, Any], now: float) -> bool:
        expires = _timestamp(record.get("expires_at"))
        if expires is None and record["status"] != PREPARING:
            expires = (_timestamp(record.get("updated_at")) or now) + self.ttl
        return expires is not None and now >= expires

    def load(self, job_id: str) -> dict[str, Any]:
        """The effective record of a live job; NotFound for unknown and expired jobs."""
        record = self.read(job_id)
        now = time.time()
        if record is None:
            raise NotFound(f"no archive job {job_id!r}")
        record = self.effective(record, now)
        if record["status"] != PREPARING and self.expired(record, now):
            self.purge(job_id)
            raise NotFound(f"no archive job {job_id!r} (it expired)")
        return record

    def sweep(self) -> int:
        """Remove every expired job (and files whose job record is gone); returns how many."""
        now = time.time()
        names: dict[str, set[str]] = {}
        for name in self.provider.list_records(JOBS):
            base = name[len(JOBS):]
            job_id = base.split(".", 1)[0]
            if _JOB_ID.match(job_id):
                names.setdefault(job_id, set()).add(base[len(job_id):])
        removed = 0
        for job_id, suffixes in names.items():
            record = self.read(job_id) if ".json" in suffixes else None
            if record is None:
                if ".json" not in suffixes:
                    self.purge(job_id)
                    removed += 1
                continue
            record = self.effective(record, now)
            if record["status"] != PREPARING and self.expired(record, now):
                self.purge(job_id)
                removed += 1
        return removed


def status_view(record: dict[str, Any]) -> dict[str, Any]:
    """The union of the original's two status forms (plus when the job was made and expires)."""
    view = {name: record.get(name) for name in STATUS_FIELDS}
    total = record.get("total") or 0
    if record["status"] == READY:
        view["progress"] = 1.0
    else:
        view["progress"] = round(min(1.0, (record.get("processed") or 0) / total), 4) if total else 0.0
    return view

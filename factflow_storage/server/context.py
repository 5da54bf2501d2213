"""What the route installers are given: the service and the server's own parts, typed,
built once by ``app.make_context``."""

from __future__ import annotations

from dataclasses import dataclass

from factflow_storage.archive.service import ArchiveJobs
from factflow_storage.server.auth import Guard
from factflow_storage.server.read_gate import ReadGate
from factflow_storage.service import StorageService


@dataclass(frozen=True)
class AppContext:
    service: StorageService
    guard: Guard
    archive_jobs: ArchiveJobs
    token: str | None = None  # for the console's login
    max_body: int = 5 * 1024**3  # bodies past this answer 413 before anything is stored
    max_streams: int | None = None  # open event streams at once (None: no limit)
    read_gate: ReadGate | None = None  # object reads and listings at once (None: no limit)

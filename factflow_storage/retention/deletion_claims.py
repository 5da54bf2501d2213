"""One deleter per execution at a time: a claim taken by a conditional create.

Every deleter (``execution delete --yes``, ``storage prune --yes``, the console, the
HTTP API) claims an execution before it marks it ``deleting``; another deleter that finds
a live claim leaves that execution alone and says who holds it. A claim is a numbered
record

    _factflow/deletion-claims/<execution id>/<generation>.json
        {"holder", "host", "pid", "pid_start", "token", "claimed_at", "renewed_at", "lease"}

created with ``CREATE_ONLY`` (a hard link, which fails on an existing name, on the
filesystem; ``If-None-Match: *`` on S3): of two deleters creating the same generation,
exactly one succeeds. The highest generation is the claim in force.

A claim is renewed by a heartbeat thread every quarter lease while its holder lives. It
is stale once ``lease`` seconds have passed since its last renewal (by the reader's
clock: keep hosts' clocks within minutes of each other), or at once when its holder ran
on this host and its process is gone (kill -9; a recycled pid is told apart by its start
time). A deleter that finds a stale claim takes over by creating the next generation,
and finishes the deletion as a re-run does. A holder checks that its generation is still
the highest before each step that removes something (``Claims.check``) and stops if it
was taken over. Finishing, or giving up, removes the generations up to its own, the
lowest first, so the claim in force is the last to go.
"""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from factflow_storage import metadata as clock
from factflow_storage.errors import PreconditionFailed
from factflow_storage.protocol import CREATE_ONLY

log = logging.getLogger(__name__)

CLAIMS = "deletion-claims/"
LEASE = 300.0  # seconds a claim outlives its holder's last renewal
HOST = socket.gethostname()
WIDTH = 10  # generations sort as names


class TakenOver(Exception):
    """A deletion stops: its claim was taken over (it was paused past its lease), or its
    execution is no longer marked ``deleting``."""


@dataclass(frozen=True, slots=True)
class Busy:
    """A live claim held by another deleter."""

    execution_id: str
    claim: dict[str, Any]

    def line(self) -> str:
        claim = self.claim
        return (f"being deleted by {claim.get('holder') or '?'} (pid {claim.get('pid') or '?'}) since "
                f"{claim.get('claimed_at') or '?'}; try again once that has finished")


def claim_prefix(execution_id: str) -> str:
    return f"{CLAIMS}{execution_id}/"


def _name(execution_id: str, generation: int) -> str:
    return f"{claim_prefix(execution_id)}{generation:0{WIDTH}d}.json"


def _generation(name: str) -> int | None:
    stem = name.rsplit("/", 1)[-1].removesuffix(".json")
    return int(stem) if stem.isdigit() else None


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` on this host (None: gone, a zombie, or unknown)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == b"Z" else fields[19].decode()


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def stale(claim: dict[str, Any]) -> bool:
    """Whether a claim no longer protects its holder's work (see the module docstring)."""
    if claim.get("host") == HOST and isinstance(claim.get("pid"), int) and claim["pid"] != os.getpid():
        started = _process_start(claim["pid"])
        if started is None or (claim.get("pid_start") and started != claim["pid_start"]):
            return True
    renewed, now = _moment(claim.get("renewed_at")), _moment(clock.now_rfc3339())
    if renewed is None or now is None:
        return True  # unreadable: whoever wrote it did not follow this protocol
    lease = claim.get("lease")
    return (now - renewed).total_seconds() > (lease if isinstance(lease, (int, float)) else LEASE)


class Claims:
    """The claims one deleter holds, renewed while it runs; a context manager that gives
    up whatever it still holds on the way out."""

    def __init__(self, provider, *, lease: float | None = None):
        self._provider = provider
        self._lease = LEASE if lease is None else lease
        self._held: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for execution_id in list(self._held):
            self.drop(execution_id)
        if self._heart is not None:
            self._heart.join()

    def _latest(self, execution_id: str) -> tuple[int, dict[str, Any] | None]:
        """The highest generation and its claim (None when unreadable or none)."""
        names = [name for name in self._provider.list_records(claim_prefix(execution_id))
                 if _generation(name) is not None]
        if not names:
            return 0, None
        name = max(names, key=lambda found: _generation(found) or 0)
        raw = self._provider.get_record(name)
        try:
            found = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            found = None
        return _generation(name) or 0, found if isinstance(found, dict) else {}

    def take(self, execution_id: str) -> Busy | None:
        """Claim ``execution_id``: None once it is ours, else the live claim in the way."""
        generation, current = self._latest(execution_id)
        if current is not None and not stale(current):
            return Busy(execution_id, current)
        now = clock.now_rfc3339()
        user = _user()
        claim = {"execution_id": execution_id, "holder": f"{user}@{HOST}", "host": HOST, "pid": os.getpid(),
                 "pid_start": _process_start(os.getpid()), "token": secrets.token_hex(8), "claimed_at": now,
                 "renewed_at": now, "lease": self._lease}
        try:
            self._provider.put_record(_name(execution_id, generation + 1), orjson.dumps(claim),
                                      condition=CREATE_ONLY)
        except PreconditionFailed:  # another deleter took it first
            _generation_now, winner = self._latest(execution_id)
            return Busy(execution_id, winner or {})
        if current is not None:
            log.warning("execution %s: took over the stale deletion claim of %s (pid %s)", execution_id,
                        current.get("holder"), current.get("pid"))
        with self._lock:
            self._held[execution_id] = (generation + 1, claim)
        self._start_heart()
        return None

    def check(self, execution_id: str) -> None:
        """Raise TakenOver unless this deleter's claim is still the one in force."""
        with self._lock:
            generation = self._held[execution_id][0]
        latest, claim = self._latest(execution_id)
        if latest != generation:
            raise TakenOver(f"execution {execution_id}: taken over by {(claim or {}).get('holder') or '?'} "
                            f"(pid {(claim or {}).get('pid') or '?'}), which finishes the deletion")

    def drop(self, execution_id: str) -> None:
        """Give the claim up: remove the generations up to this deleter's, the lowest first."""
        with self._lock:
            generation, _claim = self._held.pop(execution_id, (0, {}))
        if not generation:
            return
        names = sorted(name for name in self._provider.list_records(claim_prefix(execution_id))
                       if (_generation(name) or 0) <= generation)
        for name in names:
            self._provider.delete_records([name])

    def _start_heart(self) -> None:
        if self._heart is None:
            self._heart = threading.Thread(target=self._beat, name="deletion-claims", daemon=True)
            self._heart.start()

    def _beat(self) -> None:
        while not self._stop.wait(self._lease / 4):
            with self._lock:  # a claim dropped meanwhile is not written back
                now = clock.now_rfc3339()
                for execution_id, (generation, claim) in self._held.items():
                    claim["renewed_at"] = now
                    try:
                        self._provider.put_record(_name(execution_id, generation), orjson.dumps(claim))
                    except Exception as err:  # noqa: BLE001  the next beat tries again; the lease is long
                        log.warning("execution %s: deletion claim not renewed: %s", execution_id, err)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

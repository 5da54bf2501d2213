"""Signed-out console sessions, shared by every replica through storage.

Signing out (``DELETE /api/v1/session``) writes an empty record
``_factflow/sessions/revoked/<session id>.<expiry>`` and adds the id to this replica's
set at once. Every replica keeps the set of revoked ids in memory and reloads it with
one listing of that prefix when it is older than ``REFRESH_SECONDS``: the first request
after that runs the listing (in a worker thread, before its access is decided), every
other request only looks the id up in the set. So a signed-out session is dead at once
on the replica that signed it out, within ``REFRESH_SECONDS`` on the others, and after a
restart from the first request on; other sessions are not touched.

The cost: a set lookup per request carrying a cookie; per replica one LIST of the
revoked records every ``REFRESH_SECONDS`` while requests come (one page per thousand
sessions signed out in the last 12 hours); one small PUT per sign-out. A record is
deleted by the first listing after its session would have expired anyway. When storage
cannot be listed the set in memory stands until a listing succeeds.
"""

from __future__ import annotations

import logging
import threading
import time

from factflow_storage.errors import StorageError

log = logging.getLogger(__name__)

PREFIX = "sessions/revoked/"
REFRESH_SECONDS = 5.0


class Revocations:
    def __init__(self, provider, refresh_seconds: float = REFRESH_SECONDS):
        self._provider = provider
        self._refresh_seconds = refresh_seconds
        self._ids: frozenset[str] = frozenset()
        self._local: set[str] = set()  # revoked here since the last listing began
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def is_revoked(self, session_id: str) -> bool:
        """No I/O: safe in waitress's event loop."""
        return session_id in self._ids or session_id in self._local

    def revoke(self, session_id: str, expires: int) -> None:
        self._local.add(session_id)
        self._provider.put_record(f"{PREFIX}{session_id}.{expires}", b"")

    def refresh_if_stale(self) -> None:
        """Reload the set when it is older than the refresh interval; a request that finds
        another thread reloading goes on with the set as it is."""
        loaded_at = self._loaded_at
        if loaded_at is not None and time.monotonic() - loaded_at < self._refresh_seconds:
            return
        if not self._lock.acquire(blocking=loaded_at is None):
            return
        try:
            if self._loaded_at is not None and time.monotonic() - self._loaded_at < self._refresh_seconds:
                return
            began = time.monotonic()
            local = set(self._local)
            try:
                ids, expired = self._listing()
            except StorageError as err:
                log.warning("revoked sessions not reloaded: %s", err)
                self._loaded_at = began  # retried after the interval, not on every request
                return
            self._ids = frozenset(ids)
            self._local -= local & ids
            self._loaded_at = began
            if expired:
                try:
                    self._provider.delete_records(expired)
                except StorageError as err:
                    log.warning("expired session revocations not removed: %s", err)
        finally:
            self._lock.release()

    def _listing(self) -> tuple[set[str], list[str]]:
        now = time.time()
        ids, expired = set(), []
        for name in self._provider.list_records(PREFIX):
            session_id, _, expires = name[len(PREFIX):].partition(".")
            if expires.isdigit() and int(expires) < now:
                expired.append(name)
            else:
                ids.add(session_id)
        return ids, expired

"""Watch sources for S3: MinIO's listen extension where the server has it, else the
write journal the S3 provider keeps (``factflow_storage.providers.s3_journal``).

Whether a server has the listen API is asked once (``providers.s3_listen``).

Both sources re-list the execution after a reconnect (an S3 or MinIO restart), so writes
made while the connection was down are reported too.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import unquote_plus

import orjson

from factflow_storage.errors import NotFound, StorageError, Unavailable
from factflow_storage.executions import is_terminal
from factflow_storage.keys import RESERVED_PREFIX
from factflow_storage.providers.s3_journal import LOOKBACK_S, journal_prefix, parse_marker
from factflow_storage.providers.s3_listen import client_of, open_listen
from factflow_storage.watch.source import Report

_CHUNK = 64 * 1024

log = logging.getLogger(__name__)


class _S3Source:
    def __init__(self, provider) -> None:
        self.provider = provider
        self._seen: dict[str, object] = {}
        self._runs = 0

    def _report(self, key: str, report: Report) -> None:
        try:
            info = self.provider.stat(key)
        except NotFound:
            return
        version = (info.last_modified, info.etag)
        if self._seen.get(key) != version:
            self._seen[key] = version
            report(info)

    def _sweep(self, prefix: str, report: Report, stop: threading.Event) -> None:
        for info in self.provider.list(prefix):
            if stop.is_set():
                return
            version = (info.last_modified, info.etag)
            if self._seen.get(info.key) != version:
                self._seen[info.key] = version
                report(info)


class ListenSource(_S3Source):
    settle = 3.0

    def run(self, prefix: str, report: Report, armed: threading.Event, stop: threading.Event) -> None:
        import urllib3

        response = open_listen(self.provider, prefix)
        if response is None:
            raise Unavailable("the S3 server stopped offering the listen API")
        try:
            self._runs += 1
            if self._runs > 1:
                self._sweep(prefix, report, stop)
            armed.set()
            buffered = b""
            for chunk in response.stream(_CHUNK):
                if stop.is_set():
                    return
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    self._handle(line, prefix, report)
        except (OSError, urllib3.exceptions.HTTPError) as err:
            raise Unavailable(f"listen stream from {self.provider.endpoint} broke off: {err}") from err
        finally:
            response.close()
            response.release_conn()
        raise Unavailable("listen stream ended")

    def _handle(self, line: bytes, prefix: str, report: Report) -> None:
        line = line.strip()
        if not line:
            return  # keep-alive
        try:
            records = orjson.loads(line).get("Records") or []
        except (orjson.JSONDecodeError, AttributeError):
            return
        for record in records:
            if not str(record.get("eventName", "")).startswith("s3:ObjectCreated:"):
                continue
            name = unquote_plus(record.get("s3", {}).get("object", {}).get("key", ""))
            key = name[len(self.provider.prefix):] if name.startswith(self.provider.prefix) else None
            if key and key.startswith(prefix):
                try:
                    self._report(key, report)
                except StorageError:
                    pass  # gone or unreadable already; the final listing has the last word


class JournalSource(_S3Source):
    settle = LOOKBACK_S
    interval = 0.2

    def run(self, prefix: str, report: Report, armed: threading.Event, stop: threading.Event) -> None:
        execution_id = prefix.removeprefix("executions/").rstrip("/")
        base = self.provider.prefix + RESERVED_PREFIX
        markers = base + journal_prefix(execution_id)
        lookback_ms = int(self.settle * 1000)
        names: dict[str, int] = {}
        self._runs += 1
        if self._runs > 1:
            self._sweep(prefix, report, stop)
        armed.set()
        while not stop.is_set():
            now = int(time.time() * 1000)
            start_after = f"{markers}{now - lookback_ms:013d}"
            new = []
            for found in self._markers(markers, start_after):
                name = found.object_name
                parsed = None if name in names else parse_marker(name[len(base):], execution_id)
                if parsed is not None:
                    new.append((name, *parsed))
            # A finished execution's markers are removed in no set order, so a listing made
            # meanwhile may hold newer ones and have lost older ones not reported yet. The
            # record is written before they go: read after the listing, a terminal one means
            # the watchers' final listing delivers these, oldest first, after what came live.
            if new and self._still_running(execution_id):
                for name, stamp, key in new:
                    names[name] = stamp
                    if key is None:
                        key = self._key_from_body(name[len(base):])
                    if key:
                        self._report(key, report)
            names = {n: s for n, s in names.items() if s > now - 2 * lookback_ms}
            stop.wait(self.interval)

    def _still_running(self, execution_id: str) -> bool:
        """False also when the record cannot be read now: the markers stay unreported, so
        the next poll finds them again (or the final listing, once they are gone)."""
        try:
            return not is_terminal(self.provider.read_execution(execution_id))
        except StorageError as err:
            log.info("execution %s: record unreadable (%s); its new writes wait for the next poll",
                     execution_id, err)
            return False

    def _markers(self, prefix: str, start_after: str):
        import urllib3

        try:
            yield from client_of(self.provider).list_objects(bucket_name=self.provider.bucket, prefix=prefix,
                                                           recursive=True, start_after=start_after)
        except (OSError, urllib3.exceptions.HTTPError) as err:
            raise Unavailable(f"cannot reach S3 at {self.provider.endpoint}: {err}") from err
        except Exception as err:
            if type(err).__name__ == "S3Error":
                raise Unavailable(f"S3 refused the journal listing: {err}") from err
            raise

    def _key_from_body(self, record: str) -> str | None:
        try:
            with self.provider.open_record(record) as body:
                return body.read().decode()
        except (StorageError, UnicodeDecodeError):
            return None

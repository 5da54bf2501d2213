"""Watch sources for S3: MinIO's listen extension where the server has it, else the
write journal (``factflow_storage.watch.journal``).

MinIO answers ``GET /BUCKET?events=...`` with a stream of JSON lines. AWS and radosgw
treat the same request as a plain bucket listing, and minio-py's
``listen_bucket_notification`` then re-sends it forever, taking each XML answer for a
dropped stream. So the request is made once here and its answer inspected: an XML
listing (or any error) means "no listen API", decided in one round trip.

Both sources re-list the execution after a reconnect (an S3 or MinIO restart), so writes
made while the connection was down are reported too.
"""

from __future__ import annotations

import threading
import time
import weakref
from urllib.parse import unquote_plus

import orjson

from factflow_storage.errors import NotFound, StorageError, Unavailable
from factflow_storage.keys import RESERVED_PREFIX
from factflow_storage.watch.journal import LOOKBACK_S, WriteJournal, journal_prefix, parse_marker
from factflow_storage.watch.source import Report

CREATED = "s3:ObjectCreated:*"
_PROBE_PREFIX = RESERVED_PREFIX + "probe/"
_CHUNK = 64 * 1024


def _client(provider):
    # The provider's own client: same endpoint, credentials, region and TLS settings.
    return provider._client


# minio-py's public listen call cannot tell a listing from a stream (see above), so the
# request it would make is made through the client's request executor directly.


def _open_listen(provider, prefix: str):
    """The raw listen response, or None when the server has no listen API."""
    import urllib3

    try:
        from factflow_storage.providers import s3_client

        response = s3_client.signed_get(_client(provider), provider.bucket, {
            "prefix": provider.prefix + prefix, "suffix": "", "events": [CREATED]}, stream=True)
    except ValueError:
        return None  # minio-py refuses outright on AWS hosts
    except (OSError, urllib3.exceptions.HTTPError) as err:
        raise Unavailable(f"cannot reach S3 at {provider.endpoint}: {err}") from err
    except Exception as err:  # S3Error: the server refused the request, so it has no such API
        if type(err).__name__ == "S3Error":
            return None
        raise
    content_type = (response.headers.get("Content-Type") or "").lower()
    if response.status != 200 or "xml" in content_type:
        response.close()
        response.release_conn()
        return None
    return response


_listen_known: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def listen_supported(provider) -> bool:
    """Whether the provider's server streams bucket notifications (probed once per provider)."""
    known = _listen_known.get(provider)
    if known is None:
        response = _open_listen(provider, _PROBE_PREFIX)
        known = response is not None
        if response is not None:
            response.close()
            response.release_conn()
        _listen_known[provider] = known
    return known


def journal_hook(provider) -> WriteJournal:
    """The write hook the registry gives S3 providers: a journal, kept only where the
    server has no listen API (probed on the first write)."""
    return WriteJournal(provider, needed=lambda: not listen_supported(provider))


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

        response = _open_listen(self.provider, prefix)
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
            for found in self._markers(markers, start_after):
                name = found.object_name
                if name in names:
                    continue
                parsed = parse_marker(name[len(base):], execution_id)
                if parsed is None:
                    continue
                stamp, key = parsed
                names[name] = stamp
                if key is None:
                    key = self._key_from_body(name[len(base):])
                if key:
                    self._report(key, report)
            names = {n: s for n, s in names.items() if s > now - 2 * lookback_ms}
            stop.wait(self.interval)

    def _markers(self, prefix: str, start_after: str):
        import urllib3

        try:
            yield from _client(self.provider).list_objects(bucket_name=self.provider.bucket, prefix=prefix,
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

"""A stand-in for MinIO's listen extension, in front of a real S3 server (radosgw).

MinIO answers ``GET /BUCKET?events=...&prefix=...&suffix=...`` with a stream of
newline-delimited JSON records (``{"Records": [...]}``) for matching events, plus a
space now and then to keep the connection alive; radosgw and AWS have no such call.
This loopback proxy forwards every other S3 request unchanged to the real server (the
Host header is kept, so SigV4 signatures still verify) and, for each object-creating
request that succeeds through it (PUT, copy, completed multipart upload), sends MinIO's
event record to the listeners whose filters match. It is only as good as what passes
through it: writes made directly to the real server are not seen, as with a MinIO
behind a proxy. ``requests`` lists (method, path) of every request it forwarded, so a
test can count what a command asked of S3.
"""

from __future__ import annotations

import http.client
import http.server
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, quote_plus, unquote, urlsplit

import orjson

KEEPALIVE_SECONDS = 0.5
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                "proxy-connection", "proxy-authorization"}


class ListenStandIn:
    def __init__(self, upstream: str, port: int = 0):
        self.upstream = upstream  # host:port of the real S3 server
        self.requests: list[tuple[str, str]] = []
        self._listeners: list[tuple[str, str, str, tuple[str, ...], queue.SimpleQueue]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="listen-standin")
        self._thread.start()

    def close(self) -> None:
        """Stop accepting and end every listen stream (as a MinIO restart would)."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for *_, inbox in self._listeners:
                inbox.put(None)
        self._thread.join(timeout=5)

    def __enter__(self) -> ListenStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events ----------------------------------------------------------------

    def listen(self, bucket: str, prefix: str, suffix: str, events: tuple[str, ...]) -> queue.SimpleQueue:
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._listeners.append((bucket, prefix, suffix, events, inbox))
        return inbox

    def unlisten(self, inbox: queue.SimpleQueue) -> None:
        with self._lock:
            self._listeners = [entry for entry in self._listeners if entry[-1] is not inbox]

    def publish(self, bucket: str, key: str, name: str, size: int, etag: str) -> None:
        record = _record(bucket, key, name, size, etag)
        with self._lock:
            listeners = list(self._listeners)
        for want_bucket, prefix, suffix, events, inbox in listeners:
            if want_bucket == bucket and key.startswith(prefix) and key.endswith(suffix) \
                    and any(_event_matches(pattern, name) for pattern in events):
                inbox.put(record)


def _event_matches(pattern: str, name: str) -> bool:
    return pattern == name or (pattern.endswith("*") and name.startswith(pattern[:-1]))


def _record(bucket: str, key: str, name: str, size: int, etag: str) -> dict:
    now = datetime.now(timezone.utc)
    return {
        "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
        "eventTime": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": name, "userIdentity": {"principalId": "standin"},
        "requestParameters": {}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "standin"}, "arn": f"arn:aws:s3:::{bucket}"},
               # MinIO sends the key query-escaped ('/' as %2F, ' ' as '+').
               "object": {"key": quote_plus(key, safe=""), "size": size, "eTag": etag.strip('"'),
                          "sequencer": f"{time.time_ns():X}"}},
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "standin"},
    }


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: ListenStandIn

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _target(self) -> tuple[str, str | None, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        path = unquote(parts.path).lstrip("/")
        bucket, _, key = path.partition("/")
        return bucket, key or None, parse_qs(parts.query, keep_blank_values=True)

    def do_GET(self) -> None:
        bucket, key, params = self._target()
        if key is None and "events" in params:
            self._listen(bucket, params)
        else:
            self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self) -> None:
        self.standin.requests.append((self.command, self.path))
        body = self._body()
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_HEADERS}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(self.standin.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
        except OSError:
            upstream.close()
            self.send_error(502)
            return
        upstream.close()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else
                                               response.getheader("Content-Length") or 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if 200 <= response.status < 300:
            self._maybe_publish(body, response)

    def _maybe_publish(self, body: bytes, response: http.client.HTTPResponse) -> None:
        bucket, key, params = self._target()
        if key is None:
            return
        etag = response.getheader("ETag") or ""
        if self.command == "PUT" and "partNumber" not in params and "uploadId" not in params \
                and not any(p in params for p in ("tagging", "acl", "retention", "legal-hold")):
            copied = self.headers.get("x-amz-copy-source")
            name = "s3:ObjectCreated:Copy" if copied else "s3:ObjectCreated:Put"
            size = len(body) if not copied else 0
            self.standin.publish(bucket, key, name, int(self.headers.get("x-amz-decoded-content-length") or size), etag)
        elif self.command == "POST" and "uploadId" in params:
            self.standin.publish(bucket, key, "s3:ObjectCreated:CompleteMultipartUpload", 0, etag)

    def _listen(self, bucket: str, params: dict[str, list[str]]) -> None:
        events = tuple(params.get("events") or ["s3:ObjectCreated:*"])
        inbox = self.standin.listen(bucket, (params.get("prefix") or [""])[0], (params.get("suffix") or [""])[0],
                                    events)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("x-amz-request-id", uuid.uuid4().hex)
            self.end_headers()
            self.wfile.flush()
            while not self.standin._closing.is_set():
                try:
                    record = inbox.get(timeout=KEEPALIVE_SECONDS)
                except queue.Empty:
                    self._chunk(b" ")
                    continue
                if record is None:
                    break
                self._chunk(orjson.dumps({"Records": [record]}) + b"\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            self.standin.unlisten(inbox)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

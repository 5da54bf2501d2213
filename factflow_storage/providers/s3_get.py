"""Whole-object GETs on kept-alive sockets, one per thread: the provider's fast read.

For a small object, minio-py's work per request (urllib3's pool, ``http.client`` and
the ``email`` header parser, signing with five HMACs) costs far more CPU than the bytes:
a download of thousands of small objects spent most of its time there. This path sends
the same SigV4-signed GET as ``s3_quick`` (the signing key is derived once a day) on a
socket each thread keeps open between requests, and parses the head once.

It takes only the plain case: a plain-HTTP endpoint with static credentials, an answer
of 200 with a Content-Length, and a blob the provider's own ``blob`` function builds
from the answer's headers (the same function as on minio-py's path, so the metadata is
the same). Anything else (an error status, a broken or refused connection, a chunked
body) returns None, and the caller makes the read through minio-py, whose errors come
out of the one table (``s3_errors``). Only a timeout is reported here, in that table's
words, since minio-py would wait as long again. An answer of 400 or 403 (a signature the
server does not take) turns the path off for the provider, so such a server costs one
extra request, not one per object.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, cast
from urllib.parse import quote

from factflow_storage.errors import Unavailable
from factflow_storage.protocol import ObjectInfo, ObjectStream
from factflow_storage.providers import s3_quick
from factflow_storage.providers.s3_errors import CONNECT_TIMEOUT, READ_TIMEOUT

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
REFUSED_SIGNATURE = (400, 403)

BlobOf = Callable[[str, Mapping[str, str], ObjectInfo], "dict[str, Any] | None"]


class KeptAliveGets:
    def __init__(self, host: str, bucket: str, access_key: str, secret_key: str, region: str):
        self._host = host
        self._bucket_path = "/" + quote(bucket, safe="")
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region
        self._local = threading.local()
        self.enabled = True
        self.sent = 0  # requests sent, for the provider's request counts (not exact across threads)

    def open(self, key: str, name: str, blob_of: BlobOf) -> ObjectStream | None:
        """The whole object ``name`` (the S3 name of ``key``), or None: the caller reads it."""
        if not self.enabled:
            return None
        path = self._bucket_path + "/" + quote(name, safe="/")
        answer = self._exchange(path)
        if answer is None:
            return None
        sock, status, headers, early = answer
        length = headers.get("content-length", "")
        if status == 200 and length.isdigit() and "transfer-encoding" not in headers:
            info = ObjectInfo(key, int(length), s3_quick._http_date(headers.get("last-modified")),
                              (headers.get("etag") or "").strip('"') or None, headers.get("content-type"))
            keep = headers.get("connection", "").lower() != "close"
            body = s3_quick.SocketBody(sock, early, info.size, self._host, self._give_back if keep else None)
            try:
                blob = blob_of(key, headers, info)
            except BaseException:
                body.close()
                raise
            if blob is not None:
                return ObjectStream(info, blob, cast(BinaryIO, body))
            body.close()
            return None
        sock.close()
        if status in REFUSED_SIGNATURE:
            self.enabled = False
            log.debug("S3 answered %s to a signed GET of %r; reads go through minio-py from now on", status, key)
        return None

    def _exchange(self, path: str) -> tuple[socket.socket, int, dict[str, str], bytes] | None:
        headers = s3_quick.signed_headers("GET", self._host, path, self._access_key, self._secret_key, self._region)
        request = s3_quick.request_bytes(path, headers, keep_alive=True)
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        # A kept socket the server has closed since fails at once: try a fresh one, once.
        for reused in ((True, False) if sock is not None else (False,)):
            connected = reused
            try:
                if not reused:
                    sock = _connect(self._host)
                    connected = True
                assert sock is not None
                self.sent += 1
                sock.sendall(request)
                return (sock, *s3_quick.read_head(sock))
            except (OSError, ValueError) as err:
                if sock is not None:
                    sock.close()
                if isinstance(err, (TimeoutError, BlockingIOError)):
                    # minio-py would wait as long again before saying the same.
                    reason = f"no answer within {READ_TIMEOUT:g} s" if connected else \
                        f"no connection within {CONNECT_TIMEOUT:g} s"
                    raise Unavailable(f"cannot reach S3 at {self._host}: {reason}") from err
                if not reused:
                    log.debug("signed GET of %r failed (%s); reading it through minio-py", path, err)
        return None

    def _give_back(self, sock: socket.socket) -> None:
        old = getattr(self._local, "sock", None)
        if old is not None:
            old.close()
        self._local.sock = sock

    def close(self) -> None:
        """Closes the calling thread's socket; other threads' go with their thread."""
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            sock.close()


def _connect(host: str) -> socket.socket:
    """A blocking socket whose timeouts the kernel keeps: Python's own timeout would poll
    before every send and receive, a system call (and a GIL hand-over) more each."""
    sock = s3_quick.connect(host, CONNECT_TIMEOUT)
    sock.settimeout(None)
    limit = struct.pack("ll", int(READ_TIMEOUT), 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
    return sock

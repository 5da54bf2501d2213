"""One-shot reads of a whole S3 object without minio-py: ``factflow storage get`` on S3.

A fresh process spends far longer importing minio-py, urllib3 and certifi than a small
object takes to arrive, so ``get`` first tries one SigV4-signed GET on a plain socket.
It keeps only the plain case: a plain-HTTP endpoint with credentials, an answer of 200,
and bytes the provider would hand out unchanged (its metadata inline, or written by
another tool). Anything else (an error status, a companion record to check, TLS, no
credentials, a network failure) returns None and the caller goes through the provider,
so every error still comes out of its one table (``s3_errors``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, BinaryIO, cast
from urllib.parse import quote

from factflow_storage.errors import InvalidKey, Unavailable
from factflow_storage.keys import MAX_KEY_BYTES, validate_key
from factflow_storage.protocol import ObjectInfo, ObjectStream
from factflow_storage.providers import s3_metadata as meta
from factflow_storage.providers.s3_endpoint import split_endpoint
from factflow_storage.storage_uri import StorageURI

DEFAULT_REGION = "us-east-1"
TIMEOUT = 6.0  # s3_errors.READ_TIMEOUT: an endpoint that accepts and never answers
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CHUNK = 1024 * 1024
MAX_HEAD = 256 * 1024  # S3 user metadata is at most 2 KiB; a head this long is not S3's


def quick_open(uri: StorageURI, options: Mapping[str, Any], key: str) -> ObjectStream | None:
    """The whole object ``key`` as a stream, or None when the provider must do this read."""
    endpoint, access_key, secret_key = options.get("endpoint"), options.get("access_key"), options.get("secret_key")
    if not (endpoint and access_key and secret_key):
        return None
    host, secure = split_endpoint(endpoint, options.get("secure"))
    if secure:
        return None
    name = uri.prefix + validate_key(key)
    if len(name.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"invalid key {key!r}: with the storage prefix {uri.prefix!r} it is longer "
                         f"than {MAX_KEY_BYTES} bytes, the S3 limit")
    path = "/" + quote(uri.location, safe="") + "/" + quote(name, safe="/")
    headers = signed_headers("GET", host, path, access_key, secret_key, options.get("region") or DEFAULT_REGION)
    try:
        answer = _exchange(host, path, headers)
    except (OSError, ValueError) as err:  # the provider will say what went wrong
        _debug("quick S3 read of %r failed (%s); using the provider", key, err)
        return None
    sock, status, lowered, early = answer
    length = lowered.get("content-length", "")
    if status == 200 and length.isdigit() and "transfer-encoding" not in lowered:
        info = ObjectInfo(key, int(length), _http_date(lowered.get("last-modified")),
                          (lowered.get("etag") or "").strip('"') or None, lowered.get("content-type"))
        blob = _blob(key, lowered, info)
        if blob is not None:
            return ObjectStream(info, blob, cast(BinaryIO, SocketBody(sock, early, info.size, host)))
    _debug("quick S3 read of %r answered %s; using the provider", key, status)
    sock.close()
    return None


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date(value: str | None) -> datetime:
    """S3's ``Sun, 06 Nov 1994 08:49:37 GMT``; other shapes through ``email.utils`` (a slower import)."""
    parts = (value or "").split()
    if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS:
        try:
            hour, minute, second = (int(n) for n in parts[4].split(":"))
            return datetime(int(parts[3]), _MONTHS.index(parts[2]) + 1, int(parts[1]), hour, minute, second,
                            tzinfo=timezone.utc)
        except ValueError:
            pass
    return meta.http_time(value)


def _debug(message: str, *args: Any) -> None:
    # logging is imported only here: its import costs more than the whole request.
    import logging

    logging.getLogger(__name__).debug(message, *args)


def _exchange(host: str, path: str, headers: Mapping[str, str]) -> tuple[socket.socket, int, dict[str, str], bytes]:
    """Send one request and read the answer's head: the socket, status, lower-cased
    headers, and the body bytes that came with the head. (``http.client`` would import
    ``ssl`` and ``email``, a third of this command's start-up.)"""
    sock = connect(host)
    try:
        sock.sendall(request_bytes(path, headers, keep_alive=False))
        status, fields, early = read_head(sock)
        return sock, status, fields, early
    except BaseException:
        sock.close()
        raise


def connect(host: str, timeout: float = TIMEOUT) -> socket.socket:
    hostname, port = _address(host)
    # An ASCII name as bytes skips the idna codec's import (getaddrinfo takes either).
    address = (hostname.encode() if hostname.isascii() else hostname, port)
    return socket.create_connection(address, timeout=timeout)  # type: ignore[arg-type]


def request_bytes(path: str, headers: Mapping[str, str], *, keep_alive: bool) -> bytes:
    lines = [f"GET {path} HTTP/1.1\r\n", *(f"{n}: {v}\r\n" for n, v in headers.items())]
    if not keep_alive:
        lines.append("connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("ascii")


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The answer's status, lower-cased headers, and the body bytes that came with the head."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk or len(received) > MAX_HEAD:
            raise ValueError("no complete HTTP head")
        received += chunk
    head, _, early = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1 answer: {status_line[:40]!r}")
    fields: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line[:40]!r}")
        fields[name.strip().lower()] = value.strip()
    return int(status), fields, early


def _blob(key: str, headers: Mapping[str, str], info: ObjectInfo) -> dict[str, Any] | None:
    """The provider's blob for this answer (``MinioProvider._blob``), where it needs no other request."""
    inline = headers.get(meta.BLOB_HEADER)
    if inline is not None:
        blob = meta.decode_inline(inline)
        if blob is not None:
            return blob
    if headers.get(meta.RECORD_HEADER):
        return None  # a companion record to read and check: the provider's work
    return meta.foreign_blob(key, info.size, info.last_modified, headers, info.etag)


def signed_headers(method: str, host: str, path: str, access_key: str, secret_key: str, region: str,
                   now: datetime | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """AWS Signature Version 4 headers for a request without a body or a query; ``extra``
    headers (lower-case names, such as ``range``) are signed and returned with them."""
    moment = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    day = moment[:8]
    headers = {**(extra or {}), "host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": moment}
    names = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "", *(f"{n}:{headers[n]}" for n in sorted(headers)), "", names,
                           EMPTY_SHA256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", moment, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(_signing_key(secret_key, day, region), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={names}, Signature={signature}")
    return headers


@functools.lru_cache(maxsize=8)
def _signing_key(secret_key: str, day: str, region: str) -> bytes:
    """Four HMACs that change once a day: a bulk read signs thousands of requests with one key."""
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _address(host: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare host (port 80) as a socket address."""
    hostname, sep, port = host.rpartition(":")
    if not sep or not port.isdigit() or (hostname.startswith("[") and not hostname.endswith("]")):
        return host.strip("[]"), 80
    return hostname.strip("[]"), int(port)


class SocketBody:
    """An answer's body as a file; a body cut short is the provider's 'connection broke'
    error. With ``give_back``, a body read to its end hands its socket back for the next
    request; closed before, the socket is closed (the rest of the body is on it)."""

    def __init__(self, sock: socket.socket, early: bytes, length: int, host: str,
                 give_back: Callable[[socket.socket], None] | None = None):
        self._sock: socket.socket | None = sock
        self._early = early[:length]
        self._left = length - len(self._early)
        self._host = host
        self._give_back = give_back
        self._surplus = len(early) > length  # bytes past the body: the socket cannot be reused

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left by default); fewer only at the end."""
        want = self._left + len(self._early) if size is None or size < 0 else size
        chunks, have = [], 0
        if self._early:
            chunk, self._early = self._early[:want], self._early[want:]
            chunks.append(chunk)
            have = len(chunk)
        if have < want and self._left > 0 and self._sock is None:
            # Closed (or broken off) before its end: never an end of file to a reader.
            raise Unavailable(f"cannot reach S3 at {self._host}: the connection broke")
        while have < want and self._left > 0 and self._sock is not None:
            try:
                chunk = self._sock.recv(min(want - have, self._left, CHUNK))
            except OSError as err:
                self.close()
                raise Unavailable(f"cannot reach S3 at {self._host}: the connection broke") from err
            if not chunk:
                self.close()
                raise Unavailable(f"cannot reach S3 at {self._host}: the connection broke")
            self._left -= len(chunk)
            chunks.append(chunk)
            have += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._left == 0 and not self._early and not self._surplus and self._give_back is not None:
            self._give_back(sock)
        else:
            sock.close()

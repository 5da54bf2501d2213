"""One-shot reads of a whole S3 object without minio-py: ``factflow storage get`` on S3.

A fresh process spends far longer importing minio-py, urllib3 and certifi than a small
object takes to arrive, so ``get`` first tries one SigV4-signed GET over ``http.client``.
It keeps only the plain case: a plain-HTTP endpoint with credentials, an answer of 200,
and bytes the provider would hand out unchanged (its metadata inline, or written by
another tool). Anything else (an error status, a companion record to check, TLS, no
credentials, a network failure) returns None and the caller goes through the provider,
so every error still comes out of its one table (``s3_errors``).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from factflow_storage.errors import InvalidKey, Unavailable
from factflow_storage.keys import MAX_KEY_BYTES, validate_key
from factflow_storage.protocol import ObjectInfo, ObjectStream
from factflow_storage.providers import s3_metadata as meta
from factflow_storage.providers.s3_endpoint import split_endpoint
from factflow_storage.registry import StorageURI

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
TIMEOUT = 6.0  # s3_errors.READ_TIMEOUT: an endpoint that accepts and never answers
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CHUNK = 1024 * 1024


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
    connection = http.client.HTTPConnection(host, timeout=TIMEOUT)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
    except OSError as err:  # http.client's errors too; the provider will say what went wrong
        log.debug("quick S3 read of %r failed (%s); using the provider", key, err)
        connection.close()
        return None
    lowered = {name.lower(): value for name, value in response.getheaders()}
    length = lowered.get("content-length")
    if response.status == 200 and length and length.isdigit():
        info = meta.response_info(key, lowered, int(length))
        blob = _blob(key, lowered, info)
        if blob is not None:
            return ObjectStream(info, blob, _Body(response, connection, info.size, host))
    log.debug("quick S3 read of %r answered %s; using the provider", key, response.status)
    connection.close()
    return None


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
                   now: datetime | None = None) -> dict[str, str]:
    """AWS Signature Version 4 headers for a request without a body or a query."""
    moment = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    day = moment[:8]
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": moment}
    names = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "", *(f"{n}:{headers[n]}" for n in sorted(headers)), "", names,
                           EMPTY_SHA256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", moment, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signing_key = f"AWS4{secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={names}, Signature={signature}")
    return headers


class _Body:
    """The response as a file; a body cut short is the provider's 'connection broke' error."""

    def __init__(self, response: http.client.HTTPResponse, connection: http.client.HTTPConnection,
                 length: int, host: str):
        self._response = response
        self._connection = connection
        self._left = length
        self._host = host

    def read(self, size: int = -1) -> bytes:
        want = self._left if size is None or size < 0 else min(size, self._left)
        if want <= 0:
            return b""
        try:
            chunk = self._response.read(want)
        except (OSError, http.client.HTTPException) as err:
            raise Unavailable(f"cannot reach S3 at {self._host}: the connection broke") from err
        if not chunk:
            raise Unavailable(f"cannot reach S3 at {self._host}: the connection broke")
        self._left -= len(chunk)
        return chunk

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._response.close()
        self._connection.close()

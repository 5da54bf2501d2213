"""Conditional writes on S3 (If-Match, If-None-Match), decided by the S3 server itself.

A client names versions by our ETag (the sha256 of the bytes); S3 compares its own (an
MD5, or a multipart tag). So the provider reads the current object once (a HEAD),
decides the client's condition against our tag, then pins the state it saw in the S3
request: ``If-None-Match: *`` when there was no object, ``If-Match: <its S3 ETag>`` when
there was one. The S3 server checks that atomically with the write: if another write
came in between, it answers 412, and so do we. A check is never followed by a blind PUT.

Servers differ. radosgw (Ceph 16) honours both headers on PutObject but only takes
If-Match unquoted, and ignores both on CompleteMultipartUpload; AWS S3 and MinIO honour
them on both. A server that ignored them would turn a conditional write into a blind
one, so the first conditional write of a provider probes the server (about eight small
requests on a record under ``_factflow/probe/``), and a write it cannot make conditional
is refused with NotSupported (HTTP 501), saying why.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from minio import Minio
from minio.error import S3Error

from factflow_storage.errors import NotSupported, StorageError
from factflow_storage.protocol import WriteCondition
from factflow_storage.providers import s3_client
from factflow_storage.providers.s3_errors import TRANSLATED, ErrorContext

log = logging.getLogger(__name__)

NO_CONDITIONAL_PUT = ("the S3 server at {endpoint} ignores If-Match/If-None-Match on PutObject, so a "
                      "conditional write cannot be made atomic there")
NO_CONDITIONAL_MULTIPART = ("the S3 server at {endpoint} ignores If-Match/If-None-Match when it completes a "
                            "multipart upload, so a conditional write of {key!r} is limited to what goes up "
                            "in one PUT ({limit})")
_PROBE_BODY = b"factflow conditional write probe"


@dataclass(frozen=True, slots=True)
class Support:
    put: bool  # PutObject honours If-None-Match: * and If-Match
    quoted: bool  # If-Match takes the ETag quoted (RFC 9110), else bare (radosgw)
    multipart: bool  # CompleteMultipartUpload honours them too


class ConditionalWrites:
    """The S3 headers that make one write conditional; the server's support, probed once."""

    def __init__(self, client: Minio, bucket: str, record_name: Callable[[str], str], errors: ErrorContext):
        self._client = client
        self._bucket = bucket
        self._record_name = record_name
        self._errors = errors
        self._lock = threading.Lock()
        self._support: Support | None = None

    def pin(self, key: str, current: tuple[str, str | None] | None, condition: WriteCondition, *,
            multipart: bool, single_put_limit: str) -> dict[str, str]:
        """The headers for the write of ``key``. ``current`` is (our tag, S3 ETag) of the
        object now, None when there is none. Raises PreconditionFailed when the client's
        condition fails on it, NotSupported when the server cannot check the write."""
        failure = condition.failure(key, None if current is None else current[0])
        if failure is not None:
            raise failure
        support = self.support()
        if not support.put:
            raise NotSupported(NO_CONDITIONAL_PUT.format(endpoint=self._errors.endpoint))
        if multipart and not support.multipart:
            raise NotSupported(NO_CONDITIONAL_MULTIPART.format(endpoint=self._errors.endpoint, key=key,
                                                               limit=single_put_limit))
        if current is None:
            return {"If-None-Match": "*"}
        s3_etag = current[1]
        if not s3_etag:
            raise NotSupported(f"the S3 server gave {key!r} no ETag to make the write conditional on")
        return {"If-Match": f'"{s3_etag}"' if support.quoted else s3_etag}

    def support(self) -> Support:
        with self._lock:
            if self._support is None:
                try:
                    self._support = self._probe()
                except TRANSLATED as err:
                    raise self._errors.translate(err, "the conditional write probe") from err
                log.info("conditional writes on %s: %s", self._errors.endpoint, self._support)
            return self._support

    def _probe(self) -> Support:
        name = self._record_name(f"probe/conditional-{os.urandom(6).hex()}")
        first = self._put(name, {"If-None-Match": "*"})  # a missing bucket fails here, leaving nothing
        try:
            if first is None or self._put(name, {"If-None-Match": "*"}) is not None:
                return Support(put=False, quoted=False, multipart=False)
            if self._put(name, {"If-Match": '"00000000000000000000000000000000"'}) is not None:
                return Support(put=False, quoted=False, multipart=False)
            quoted = self._put(name, {"If-Match": f'"{first}"'}) is not None
            if not quoted and self._put(name, {"If-Match": first}) is None:
                return Support(put=False, quoted=False, multipart=False)
            return Support(put=True, quoted=quoted, multipart=self._multipart_refused(name))
        finally:
            try:
                self._client.remove_object(bucket_name=self._bucket, object_name=name)
            except TRANSLATED as err:
                log.warning("conditional write probe %r not removed: %s", name, err)

    def _put(self, name: str, headers: dict[str, str]) -> str | None:
        """The new ETag, or None when the server refused the write as a failed precondition."""
        try:
            return s3_client.put_object(self._client, self._bucket, name, _PROBE_BODY,
                                        {"Content-Type": "application/octet-stream", **headers})
        except S3Error as err:
            if err.code == "PreconditionFailed":
                return None
            raise

    def _multipart_refused(self, name: str) -> bool:
        """Whether completing an upload over an existing object with If-None-Match: * fails."""
        upload_id = s3_client.create_multipart_upload(self._client, self._bucket, name,
                                                      {"Content-Type": "application/octet-stream"})
        try:
            etag = s3_client.upload_part(self._client, self._bucket, name, upload_id, 1, _PROBE_BODY)
            s3_client.complete_multipart_upload(self._client, self._bucket, name, upload_id, [(1, etag)],
                                                headers={"If-None-Match": "*"})
        except S3Error as err:
            if err.code == "PreconditionFailed":
                self._abort(name, upload_id)
                return True
            self._abort(name, upload_id)
            raise
        return False

    def _abort(self, name: str, upload_id: str) -> None:
        try:
            s3_client.abort_multipart_upload(self._client, self._bucket, name, upload_id)
        except (StorageError, *TRANSLATED):
            pass  # fsck removes incomplete uploads past its grace period

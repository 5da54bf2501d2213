"""S3 failures as the project's errors: one table from ``S3Error.code``, plus what the
HTTP layer raises before any S3 answer exists (refused connections, timeouts, responses
that are not S3's).

minio-py synthesizes codes for HEAD requests, which carry no error body: a 403 becomes
``AccessDenied`` whatever the cause and a 404 ``NoSuchKey`` even when the bucket is
missing. The provider resolves those two with one follow-up request (see ``minio.py``).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import urllib3.exceptions
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from factflow_storage.errors import (AccessDenied, BadCredentials, BadRequest, BucketMissing, ConfigError,
                                     InvalidKey, InvalidRange, NotFound, PreconditionFailed, StorageError, TooLarge,
                                     Unavailable)
from factflow_storage.providers import s3_client

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 6.0

# Message templates see: endpoint, bucket, what (e.g. "object 'a/b'"), access_key, code.
_DENIED = "access denied to {what} in bucket {bucket!r} on {endpoint}"
_CREDENTIALS = "{endpoint} refused the credentials of access key {access_key!r} ({code}): check FACTFLOW_MINIO_SECRET_KEY"
_UNKNOWN_KEY = "{endpoint} does not know access key {access_key!r}: check FACTFLOW_MINIO_ACCESS_KEY"
_BUSY = "S3 at {endpoint} is unavailable ({code}); try again later"

ERROR_TABLE: dict[str, tuple[type[StorageError], str]] = {
    "NoSuchKey": (NotFound, "no {what}"),
    "NoSuchBucket": (BucketMissing, "bucket {bucket!r} does not exist on {endpoint} "
                                    "(FACTFLOW_MINIO_CREATE_BUCKET=1 creates it on first write)"),
    "AccessDenied": (AccessDenied, _DENIED),
    "AllAccessDisabled": (AccessDenied, _DENIED),
    "AccountProblem": (AccessDenied, _DENIED),
    "InvalidAccessKeyId": (BadCredentials, _UNKNOWN_KEY),
    "SignatureDoesNotMatch": (BadCredentials, _CREDENTIALS),
    "InvalidToken": (BadCredentials, _CREDENTIALS),
    "ExpiredToken": (BadCredentials, _CREDENTIALS),
    "InvalidSecurity": (BadCredentials, _CREDENTIALS),
    "RequestTimeTooSkewed": (Unavailable, "this machine's clock is too far from {endpoint}'s for S3 signatures"),
    "InvalidRange": (InvalidRange, "range not satisfiable for {what}"),
    "InvalidObjectName": (InvalidKey, "{endpoint} refused the name of {what}"),
    "KeyTooLongError": (InvalidKey, "{endpoint} refused the name of {what} as too long"),
    "EntityTooLarge": (TooLarge, "{what} is larger than {endpoint} accepts"),
    "MetadataTooLarge": (TooLarge, "the metadata of {what} is larger than {endpoint} accepts"),
    "InvalidBucketName": (ConfigError, "{endpoint} refused the bucket name {bucket!r}"),
    "SlowDown": (Unavailable, _BUSY),
    "ServiceUnavailable": (Unavailable, _BUSY),
    "InternalError": (Unavailable, _BUSY),
    "RequestTimeout": (Unavailable, _BUSY),
    "XMinioServerNotInitialized": (Unavailable, _BUSY),
    "PreconditionFailed": (PreconditionFailed, "{what} was changed by another write"),
    "ConditionalRequestConflict": (PreconditionFailed, "{what} was changed by another write"),
}


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """What a message needs to say where things went wrong."""

    endpoint: str
    bucket: str
    access_key: str | None

    def bucket_missing(self) -> StorageError:
        error_class, template = ERROR_TABLE["NoSuchBucket"]
        return error_class(template.format(endpoint=self.endpoint, bucket=self.bucket))

    def translate(self, err: BaseException, what: str = "the request") -> StorageError:
        """The project's error for a minio or urllib3 exception (callers ``raise ... from err``)."""
        if isinstance(err, StorageError):
            return err
        fields = {"endpoint": self.endpoint, "bucket": self.bucket, "what": what,
                  "access_key": self.access_key or "", "code": getattr(err, "code", "")}
        if isinstance(err, S3Error):
            error_class, template = ERROR_TABLE.get(err.code or "", (StorageError, "S3 error {code} on {what} at {endpoint}"))
            return error_class(template.format(**fields))
        if isinstance(err, InvalidResponseError):
            return _invalid_response(err, fields)
        if isinstance(err, ServerError):
            status = err.status_code
            error_class = Unavailable if status >= 500 else StorageError
            return error_class(f"S3 at {self.endpoint} failed with HTTP {status} on {what}")
        if isinstance(err, urllib3.exceptions.HTTPError):
            return Unavailable(f"cannot reach S3 at {self.endpoint}: {_network_reason(err)}")
        if isinstance(err, MinioException):
            return StorageError(f"S3 error on {what} at {self.endpoint}: {err}")
        if isinstance(err, OSError):
            return Unavailable(f"cannot reach S3 at {self.endpoint}: {err.strerror or err}")
        return StorageError(f"S3 error on {what} at {self.endpoint}: {err}")


TRANSLATED = (MinioException, urllib3.exceptions.HTTPError, OSError)
"""What the provider catches around every client call: minio's and the network's errors."""


def _invalid_response(err: InvalidResponseError, fields: dict) -> StorageError:
    status = s3_client.response_status(err)
    where = fields["endpoint"]
    if status == 400 and not s3_client.response_body(err):
        # radosgw's answer to request headers past ~16 KiB: a bare 400.
        return BadRequest(f"{where} refused the request for {fields['what']} with a bare HTTP 400 "
                          "(request headers too large?)")
    if status >= 500:
        return Unavailable(f"S3 at {where} failed with HTTP {status} and no S3 error")
    return Unavailable(f"{where} answered HTTP {status or '?'} without an S3 error: is it an S3 server?")


def _network_reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    # Most specific first: in urllib3 2, NewConnectionError is also a ConnectTimeoutError.
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "unknown host"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        cause = reason.__cause__ or reason.__context__
        if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
            return "connection refused"
        return "cannot connect"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return f"no answer within {READ_TIMEOUT:g} s"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {CONNECT_TIMEOUT:g} s"
    if isinstance(reason, urllib3.exceptions.SSLError):
        return "TLS handshake failed (FACTFLOW_MINIO_SECURE=false for a plain HTTP endpoint?)"
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        return "the connection broke"
    return " ".join(str(reason).split())[:200]

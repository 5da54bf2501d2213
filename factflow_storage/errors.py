"""The project's errors: built-in exception types, so callers can catch either.

Each carries the API's ``error_code`` and HTTP ``status``; the CLI turns any of them
into one line on stderr and exit 1, the server into the JSON error shape.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every operational error."""

    error_code = "storage_error"
    status = 500

    def __str__(self) -> str:
        return self.args[0] if self.args else self.error_code


class InvalidKey(StorageError, ValueError):
    error_code = "invalid_key"
    status = 400


class BadRequest(StorageError, ValueError):
    error_code = "bad_request"
    status = 400


class NotFound(StorageError, FileNotFoundError):
    error_code = "not_found"
    status = 404


class Deleted(NotFound):
    """The execution existed and was deleted: waiting for it would wait forever."""

    error_code = "execution_deleted"


class Conflict(StorageError, FileExistsError):
    error_code = "conflict"
    status = 409


class PreconditionFailed(StorageError):
    """A conditional request's precondition does not hold; ``etag`` is the current
    object's (quoted), None when there is no object."""

    error_code = "precondition_failed"
    status = 412

    def __init__(self, message: str, etag: str | None = None):
        super().__init__(message)
        self.etag = etag


class Quarantined(StorageError):
    """The object's bytes no longer match its checksum and ``fsck --verify --repair`` set
    it aside: reads refuse it until an operator accepts the new bytes (or writes anew)."""

    error_code = "quarantined"
    status = 409


class NotSupported(StorageError, NotImplementedError):
    """The backend cannot do what was asked safely (a conditional write it cannot make atomic)."""

    error_code = "not_implemented"
    status = 501


class InvalidRange(StorageError, ValueError):
    error_code = "range_not_satisfiable"
    status = 416


class TooLarge(StorageError, ValueError):
    error_code = "too_large"
    status = 413


class Unauthorized(StorageError, PermissionError):
    error_code = "unauthorized"
    status = 401


class AccessDenied(StorageError, PermissionError):
    error_code = "access_denied"
    status = 403


class Unavailable(StorageError, ConnectionError):
    """The storage backend cannot be reached or refuses our credentials."""

    error_code = "storage_unavailable"
    status = 503


class BadCredentials(Unavailable):
    error_code = "bad_credentials"


class BucketMissing(Unavailable):
    error_code = "bucket_not_found"


class ConfigError(StorageError, ValueError):
    error_code = "config_error"
    status = 500


class Busy(StorageError):
    """A capacity limit of the server is reached; retry after ``retry_after`` seconds."""

    error_code = "busy"
    status = 503

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after

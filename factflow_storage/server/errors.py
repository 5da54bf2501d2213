"""The HTTP-only errors of the server, in the project's error shape (``StorageError``)."""

from __future__ import annotations

from factflow_storage.errors import Busy, PreconditionFailed, StorageError

__all__ = ["Busy", "LengthRequired", "MethodNotAllowed", "PreconditionFailed", "UnsupportedMediaType"]


class MethodNotAllowed(StorageError):
    error_code = "method_not_allowed"
    status = 405

    def __init__(self, message: str, allow: str):
        super().__init__(message)
        self.allow = allow


class LengthRequired(StorageError):
    error_code = "length_required"
    status = 411


class UnsupportedMediaType(StorageError):
    error_code = "unsupported_media_type"
    status = 415

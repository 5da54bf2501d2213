"""StorageProtocol: the contract every provider keeps, documented once, here.

Keys are validated by the caller-facing methods (``factflow_storage.keys``); providers
document only where they differ. Every method raises the errors of
``factflow_storage.errors`` and never a backend's own exception.

Ordering: ``list`` yields keys in S3 order, byte-wise lexicographic on the UTF-8 key.
Visibility: an object is never seen half-written, nor with the metadata of another
version; sidecars and everything under ``_factflow/`` are never listed as objects.
Missing keys: ``read``/``open``/``stat``/``metadata`` raise NotFound; ``delete`` of a
missing key succeeds silently, as on S3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol, runtime_checkable

import orjson

from factflow_storage.errors import InvalidRange, NotFound


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    etag: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class PrefixInfo:
    """A common prefix in a one-level listing (always ends with '/')."""

    prefix: str


class ObjectStream:
    """An open object: its info and metadata, and its bytes (or a range of them).

    ``info`` and ``metadata`` describe the very version whose bytes are read.
    """

    def __init__(self, info: ObjectInfo, metadata: dict[str, Any], body: BinaryIO,
                 start: int = 0, length: int | None = None):
        self.info = info
        self.metadata = metadata
        self.start = start
        self.length = info.size - start if length is None else length
        self._body = body
        self._remaining = self.length

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        want = self._remaining if size is None or size < 0 else min(size, self._remaining)
        chunk = self._body.read(want)
        self._remaining -= len(chunk)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(1024 * 1024):
            yield chunk

    def copy_to(self, out: BinaryIO) -> None:
        """Write the remaining bytes to ``out``: by the kernel when both ends are OS files
        (the body still the open version), through Python otherwise."""
        from factflow_storage.kernel_copy import copy_range

        try:
            src_fd, position = self._body.fileno(), self._body.tell()
            out.flush()
            dst_fd = out.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
            src_fd = -1
        if src_fd >= 0 and self._remaining > 0:
            copied = copy_range(src_fd, dst_fd, position, self._remaining)
            if copied:
                self._remaining -= copied
                self._body.seek(position + copied)
        for chunk in self:
            out.write(chunk)
        out.flush()

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> ObjectStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_range(key: str, size: int, start: int, length: int | None) -> None:
    """Ranges are refused only where HTTP would answer 416."""
    if start < 0 or (length is not None and length < 0):
        raise InvalidRange(f"invalid range for {key!r}")
    if start and start >= size:
        raise InvalidRange(f"range starts at {start}, past the end of {key!r} ({size} bytes)")


class WriteHook(Protocol):
    """Told of each committed write; must not raise for the write's sake (it is done)."""

    def object_written(self, key: str) -> None: ...

    def execution_written(self, execution_id: str, record: Mapping[str, Any]) -> None: ...


@runtime_checkable
class StorageProtocol(Protocol):
    uri: str

    # The original's five, which pipelines already call.
    def write(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None = None,
              *, content_type: str | None = None) -> dict[str, Any]:
        """Store bytes (or a stream of unknown length) and return the stored metadata blob."""

    def read(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (a string prefix, as in S3), as a stream."""

    def delete(self, key: str) -> None: ...

    # What the CLI and the server need.
    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream:
        """Open for streaming; InvalidRange when ``start`` is at or past a non-empty end."""

    def stat(self, key: str) -> ObjectInfo: ...

    def metadata(self, key: str) -> dict[str, Any]: ...

    def browse(self, prefix: str = "", *, start_after: str | None = None
               ) -> Iterator[ObjectInfo | PrefixInfo]:
        """One level under ``prefix`` with '/' as delimiter, in S3 order, as a stream."""

    # Internal records under ``_factflow/`` (execution records, jobs, spilled metadata).
    def put_record(self, name: str, data: bytes | BinaryIO) -> None: ...

    def open_record(self, name: str) -> BinaryIO: ...

    def list_records(self, prefix: str) -> Iterator[str]: ...

    def delete_record(self, name: str) -> None: ...

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete several objects (and their metadata) at once; missing keys are skipped."""

    def delete_records(self, names: Iterable[str]) -> None: ...

    def read_execution(self, execution_id: str) -> dict[str, Any] | None: ...

    def write_execution(self, execution_id: str, record: Mapping[str, Any]) -> None: ...

    def check(self) -> None:
        """Raise Unavailable when the backend cannot be reached."""

    def close(self) -> None: ...


class BaseProvider:
    """Methods every provider derives the same way from its primitives."""

    uri: str
    # Observers of committed writes (``object_written(key)``, ``execution_written(id,
    # record)``), attached by whoever opens the provider (the registry: the S3 write journal).
    write_hooks: tuple[WriteHook, ...] = ()

    def add_write_hook(self, hook: WriteHook) -> None:
        self.write_hooks = (*self.write_hooks, hook)

    def after_write(self, key: str) -> None:
        """Called by ``write`` once ``key`` is committed."""
        for hook in self.write_hooks:
            hook.object_written(key)

    def delete_records(self, names: Iterable[str]) -> None:
        """Delete many records; providers with a bulk delete override this."""
        for name in names:
            self.delete_record(name)  # type: ignore[attr-defined]

    def read(self, key: str) -> bytes:
        with self.open(key) as stream:  # type: ignore[attr-defined]
            return stream.read()

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)  # type: ignore[attr-defined]
        except NotFound:
            return False
        return True

    def get_record(self, name: str) -> bytes | None:
        try:
            with self.open_record(name) as body:  # type: ignore[attr-defined]
                return body.read()
        except NotFound:
            return None

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete several objects with their metadata; missing keys are skipped. S3
        providers send them 1,000 names a request."""
        for key in keys:
            self.delete(key)  # type: ignore[attr-defined]

    def read_execution(self, execution_id: str) -> dict[str, Any] | None:
        raw = self.get_record(f"executions/{execution_id}.json")
        return None if raw is None else orjson.loads(raw)

    def write_execution(self, execution_id: str, record: Mapping[str, Any]) -> None:
        self.put_record(f"executions/{execution_id}.json", orjson.dumps(dict(record)))  # type: ignore[attr-defined]
        for hook in self.write_hooks:
            hook.execution_written(execution_id, record)

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

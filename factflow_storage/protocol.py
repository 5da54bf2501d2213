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
from abc import ABC, abstractmethod
from typing import Any, BinaryIO, Protocol, Self, runtime_checkable


from factflow_storage.errors import InvalidRange, NotFound, NotSupported, PreconditionFailed


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


def object_etag(info: ObjectInfo, metadata: Mapping[str, Any]) -> str:
    """The object's entity tag, unquoted: the sha256 of its bytes (the blob's checksum),
    else the backend's ETag, else size and mtime. The server sends it quoted; conditional
    writes compare against it."""
    checksum = str(metadata.get("checksum") or "")
    tag = checksum.partition(":")[2] or info.etag
    if not tag:
        tag = f"{info.size:x}-{int(info.last_modified.timestamp() * 1000):x}"
    return tag


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """A write's preconditions (RFC 9110 If-Match, If-None-Match), which the provider
    checks atomically with the write: against the current object under the key's lock
    on a filesystem, by the S3 server's own conditional PUT on S3 (``NotSupported`` where
    it has none). ``if_match``/``if_none_match`` hold unquoted tags, or ``"*"`` for any
    object; a weak tag never matches ``if_match``."""

    if_match: tuple[str, ...] | None = None
    if_none_match: tuple[str, ...] | None = None

    def failure(self, key: str, current: str | None) -> PreconditionFailed | None:
        """The error when the object whose tag is ``current`` (None: no object) fails it."""
        if self.if_match is not None:
            if current is None:
                return PreconditionFailed(f"If-Match: there is no object {key!r}")
            if "*" not in self.if_match and current not in self.if_match:
                return PreconditionFailed(f"{key!r} was changed: its ETag is now {current}", f'"{current}"')
        if self.if_none_match is not None and current is not None \
                and ("*" in self.if_none_match or current in self.if_none_match):
            return PreconditionFailed(f"{key!r} already exists (ETag {current})", f'"{current}"')
        return None


CREATE_ONLY = WriteCondition(if_none_match=("*",))


def record_create_only(name: str, condition: WriteCondition | None) -> bool:
    """Whether a record write must create (``CREATE_ONLY``); records take no other condition."""
    if condition is None:
        return False
    if condition == CREATE_ONLY:
        return True
    raise NotSupported(f"record {name!r}: the only condition a record write takes is If-None-Match: *")


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

    def execution_finished(self, execution_id: str) -> None: ...


@runtime_checkable
class StorageProtocol(Protocol):
    """What every provider keeps: storage primitives only; the module's docstring states
    the rules all share. What stored objects mean (execution records, the lineage index)
    is built on these by the domain layer (``factflow_storage.store.Store``), which the
    registry puts over every provider it opens.

    Pipelines use ``factflow_storage.open_storage()`` (a ``PipelineStorage`` over one
    of these); the CLI and the server reach it through the service layer.
    """

    uri: str

    # The original's five, which pipelines already call.
    def write(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None = None,
              *, content_type: str | None = None, condition: WriteCondition | None = None) -> dict[str, Any]:
        """Store bytes (or a stream of unknown length, read to its end) under ``key`` with
        ``metadata`` (a JSON object: provenance, ``config_hash``, ``lineage``, extras), and
        return the stored blob, computed fields included (``factflow_storage.metadata``).

        With ``condition``, only when it holds for the object the write replaces, checked
        atomically with the write (PreconditionFailed, with the current tag, otherwise).

        Atomic and linearizable per key: readers see the old version or the new one, each
        with its own blob; the last write to return wins. Durable once it returns
        (filesystem: data, sidecar and directory fsynced; S3: every request acknowledged).
        Committed writes are told to the provider's write hooks (the S3 journal)
        afterwards. On failure nothing new is visible under ``key``. (``Store.write``
        indexes cross-execution ``lineage`` around this.)

        Raises InvalidKey, BadRequest (metadata not a JSON object), TooLarge (blob over
        ``MAX_METADATA_BYTES``, before any byte moves), Conflict (filesystem: an object
        beside a prefix of the same name), PreconditionFailed and NotSupported (a
        ``condition`` that does not hold, or that the backend cannot check atomically),
        Unavailable and its subclasses.
        """

    def read(self, key: str) -> bytes:
        """The whole bytes of one version of ``key``. Raises NotFound, InvalidKey, Unavailable."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``; a key that is only a prefix is not one."""

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (a string prefix, as in S3), as a stream in S3
        order, after ``start_after``, at most ``limit``. Objects written meanwhile may or
        may not appear; a filesystem root that does not exist lists nothing. Raises
        InvalidKey for a refused prefix, Unavailable."""

    def delete(self, key: str) -> None:
        """Remove ``key`` and its metadata, atomically for readers; a missing key is not an
        error (as on S3), nor is a key that is only a prefix (nothing is deleted)."""

    # What the CLI and the server need.
    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream:
        """Open for streaming from ``start`` for ``length`` bytes (to the end by default);
        the stream's ``info`` and ``metadata`` describe the very version it reads.
        Raises NotFound, InvalidKey, InvalidRange (``start`` at or past a non-empty end)."""

    def stat(self, key: str) -> ObjectInfo:
        """Size, modification time, ETag of ``key`` (no metadata read). Raises NotFound."""

    def metadata(self, key: str) -> dict[str, Any]:
        """The blob of the version currently stored (spilled companions read back
        transparently; objects another tool wrote get computed fields). Raises NotFound."""

    def browse(self, prefix: str = "", *, start_after: str | None = None
               ) -> Iterator[ObjectInfo | PrefixInfo]:
        """One level under ``prefix`` with '/' as delimiter, in S3 order, as a stream."""

    # Internal records under ``_factflow/`` (execution records, jobs, spilled metadata).
    def put_record(self, name: str, data: bytes | BinaryIO, *, condition: WriteCondition | None = None) -> None:
        """Replace record ``name`` whole and durably (readers see old or new). With
        ``condition=CREATE_ONLY`` (bytes only), create it or raise PreconditionFailed if it
        exists, atomically: of two such writes one wins (filesystem: a hard link, which
        fails on an existing name; S3: ``If-None-Match: *``). A claim is taken this way."""

    def open_record(self, name: str) -> BinaryIO:
        """Record ``name`` for reading; close it. Raises NotFound."""

    def list_records(self, prefix: str, *, start_after: str | None = None,
                     first_page: int | None = None) -> Iterator[str]:
        """Record names under ``prefix`` (past ``start_after``), sorted as S3 lists keys.
        ``first_page`` is how many names the caller expects to need: a provider that lists
        in pages asks for that many first, so a short read does not pay for a full page."""

    def delete_record(self, name: str) -> None:
        """Remove record ``name``; a missing one is not an error."""

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete several objects (and their metadata) at once; missing keys are skipped."""

    def delete_records(self, names: Iterable[str]) -> None:
        """Delete several records; missing ones are skipped."""

    def get_record(self, name: str) -> bytes | None:
        """Record ``name``'s bytes, or None when there is none."""

    def check(self) -> None:
        """Raise Unavailable when the backend cannot be reached."""

    def check_keys(self, keys: Iterable[str]) -> None:
        """Raise InvalidKey or Conflict, before anything is written, when this store cannot
        hold all of ``keys`` at once (a copy checks what it is about to write)."""

    def close(self) -> None:
        """Release connections and descriptors."""


class BaseProvider(ABC):
    """Methods every provider derives the same way from its primitives; the primitives
    they use are declared here, abstract, so a provider that lacks one cannot be built."""

    uri: str
    # Observers of committed writes (``object_written(key)``; ``execution_finished(id)``,
    # told by the domain layer's ``Store``): the S3 provider attaches its write journal.
    write_hooks: tuple[WriteHook, ...] = ()
    # Metadata reads a listing runs at once: overlapping round trips pays on a network
    # store; a local filesystem answers from the page cache faster than a thread hand-off.
    metadata_readers: int = 16
    # Object reads and listings the server runs at once, in arrival order (None: as many as
    # it has threads). A network store overlaps round trips; a local filesystem answers from
    # the page cache, where more requests at once only take turns at the GIL.
    read_slots: int | None = None

    def before_serving(self) -> None:
        """Called by the server before it serves: a provider may trade a little of one
        thread's speed for less contention between many threads."""
        return None

    @abstractmethod
    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream: ...

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def put_record(self, name: str, data: bytes | BinaryIO, *, condition: WriteCondition | None = None) -> None: ...

    @abstractmethod
    def open_record(self, name: str) -> BinaryIO: ...

    @abstractmethod
    def delete_record(self, name: str) -> None: ...

    def add_write_hook(self, hook: WriteHook) -> None:
        self.write_hooks = (*self.write_hooks, hook)

    def remove_write_hooks(self) -> None:
        """For a copy of finished executions, which nobody follows live."""
        self.write_hooks = ()

    def after_write(self, key: str) -> None:
        """Called by ``write`` once ``key`` is committed."""
        for hook in self.write_hooks:
            hook.object_written(key)

    def delete_records(self, names: Iterable[str]) -> None:
        """Delete many records; providers with a bulk delete override this."""
        for name in names:
            self.delete_record(name)

    def read(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def get_record(self, name: str) -> bytes | None:
        try:
            with self.open_record(name) as body:
                return body.read()
        except NotFound:
            return None

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete several objects with their metadata; missing keys are skipped. S3
        providers send them 1,000 names a request."""
        for key in keys:
            self.delete(key)

    def check(self) -> None:
        """A store with nothing to reach is always reachable."""
        return None

    def check_keys(self, keys: Iterable[str]) -> None:
        from factflow_storage.keys import validate_key

        for key in keys:
            validate_key(key)

    def close(self) -> None:
        """Nothing held open by default."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

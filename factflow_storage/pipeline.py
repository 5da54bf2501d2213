"""The pipeline's side: ``open_storage()`` and the writer's operations, typed and documented.

This is the promise a pipeline codes against; everything else in the package stays
importable but may change. ``open_storage`` reads the settings exactly as the ``factflow``
command does in direct mode (the ``storage_uri`` argument like ``--storage``, then
``FACTFLOW_*`` variables, then the TOML file, then the default) and opens the provider
through the same function, so a pipeline and the CLI run in the same directory with the
same environment see the same storage. ``FACTFLOW_API_URL`` is not honoured here: a
pipeline writes to storage directly; the HTTP client is the CLI's.

Every operation goes through the same service layer the CLI and the HTTP API call.
A ``PipelineStorage`` may be shared by threads (``asyncio.to_thread`` included).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO, Literal

from factflow_storage import executions
from factflow_storage.errors import Unavailable
from factflow_storage.keys import build_key, validate_key, validate_prefix
from factflow_storage.protocol import ObjectInfo, ObjectStream, StorageProtocol
from factflow_storage.registry import open_provider
from factflow_storage.service import StorageService
from factflow_storage.store import Store, as_store
from factflow_storage.settings import load_settings

logger = logging.getLogger(__name__)

FinalStatus = Literal["completed", "failed", "cancelled", "interrupted"]


def open_storage(storage_uri: str | None = None, *, config: str | os.PathLike[str] | None = None
                 ) -> PipelineStorage:
    """Open the storage in force, as ``factflow`` does without ``--api``.

    Settings, highest first: ``storage_uri`` (like ``--storage``), the ``FACTFLOW_*``
    variables (``FACTFLOW_STORAGE_URI``, ``FACTFLOW_MINIO_*``), the TOML file (``config``,
    else ``$FACTFLOW_CONFIG``, ``./factflow.toml``, ``~/.config/factflow/config.toml``),
    the default ``file://./output/storage``. A relative ``file://`` path is resolved
    against the working directory *now*, once: a later ``os.chdir`` does not move it.

    ``FACTFLOW_API_URL`` is ignored (storage is opened directly, never through a server).
    Nothing is contacted yet: a bucket that cannot be reached fails the first operation
    with ``Unavailable``; call ``check()`` to find out at once.

    Raises ``ConfigError`` (a ``ValueError``) for an unknown URI scheme, a bad bucket
    name, a named config file that does not exist or is not valid TOML.
    """
    settings = load_settings({"storage_uri": storage_uri}, config=None if config is None else os.fspath(config))
    if settings.api_url:
        logger.debug("FACTFLOW_API_URL (%s) is the CLI's; open_storage opens %s directly",
                     settings.api_url, settings.storage_uri)
    return PipelineStorage(open_provider(settings))


class PipelineStorage:
    """A pipeline's handle on storage: write, read, list, and mark executions.

    Keys are UTF-8, at most 1024 bytes, ``/``-separated, conventionally
    ``executions/<exec-id>/<route>/<stage>/<msg-id>`` (``key()`` builds one); anything
    else refused raises ``InvalidKey``. Every error is a ``factflow_storage.errors``
    class, each also a built-in one (``NotFound`` is a ``FileNotFoundError``,
    ``InvalidKey`` a ``ValueError``, ``Unavailable`` a ``ConnectionError``), never a
    backend's own exception. Use it as a context manager, or call ``close()``.
    """

    def __init__(self, provider: StorageProtocol | Store):
        self.provider = as_store(provider)
        self._service = StorageService(provider)

    @property
    def uri(self) -> str:
        """The storage URI this handle writes to, as given (``file://...``, ``minio://...``)."""
        return self.provider.uri

    @staticmethod
    def key(execution_id: str, route_id: str, stage: str, msg_id: str) -> str:
        """The conventional key ``executions/<execution_id>/<route_id>/<stage>/<msg_id>``.

        Raises ``InvalidKey`` when a part is not one key segment (``msg_id`` may hold ``/``).
        """
        return build_key(execution_id, route_id, stage, msg_id)

    # -- writes ----------------------------------------------------------------

    def write(self, key: str, data: bytes | BinaryIO, *, lineage: str | Sequence[str] | None = None,
              config_hash: str | None = None, content_type: str | None = None,
              metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Store ``data`` under ``key`` with its metadata blob; return the stored blob.

        ``data`` is bytes or a binary stream of any length (read to its end, never
        seeked). ``lineage`` (the parent keys, or a lineage row id), ``config_hash`` and
        ``content_type`` go into the blob beside ``metadata``'s own fields (adapter
        extras), over any of the same name there. The blob returned holds the computed
        fields too: ``key``, ``content_length``, ``checksum`` (``sha256:<hex>``),
        ``created_at`` and the provenance the key gives (``execution_id``, ``route_id``,
        ``stage``, ``msg_id``); values passed for computed fields are replaced.

        Guarantees, once it returns: the write is durable (on the filesystem, bytes,
        sidecar and directory are fsynced; on S3 the server acknowledged every request)
        and atomic: readers see the old version or the new one whole, with its own
        metadata, never a mix. Writes of one key are linearizable: the last to return wins.
        Keys of other executions named in ``lineage`` are indexed before the object is
        committed, so retention never deletes a parent this object needs. A write that
        raises stored nothing visible under ``key`` (the old version, if any, remains).

        Raises ``InvalidKey`` for a refused key, ``BadRequest`` for metadata that is not
        JSON, ``TooLarge`` for a blob over 64 KiB of JSON (checked before any byte
        moves), ``Conflict`` on a filesystem when ``key`` is a prefix of another object
        or has one as a prefix, ``Unavailable`` (``BadCredentials``, ``BucketMissing``)
        when the backend cannot be reached, refuses the credentials, or the disk is full.
        """
        return self._service.put(key, data, writer_blob(metadata, lineage, config_hash), content_type=content_type)

    @contextmanager
    def batch(self) -> Iterator[WriteBatch]:
        """``with storage.batch() as batch:`` for a stage that writes many small objects:
        ``batch.write`` takes ``write``'s arguments and keeps its promises, except that
        durability is acknowledged by the end of the ``with`` block, not by each call.

        Each write is visible, atomic and linearizable when ``batch.write`` returns, as a
        plain write is. On the filesystem its bytes and sidecar are fsynced before they
        are renamed into place, and the directory fsync that makes the renames survive a
        power failure is done once per directory when the block ends (so a crash before
        the end may lose a batched write whole, never leave it torn). The block's exit
        returns, or lets an exception out, only after those fsyncs: when it returns,
        every batched write is durable. On S3 every write is acknowledged by the server
        when it returns, so a batch changes nothing there. A failed fsync at the end
        raises ``Unavailable``. A batch may be used from several threads.
        """
        make = getattr(self.provider, "dir_syncs", None)
        syncs = make() if make is not None else None
        try:
            yield WriteBatch(self, syncs)
        finally:
            if syncs is not None:
                try:
                    syncs.sync()
                except OSError as err:
                    raise Unavailable(f"cannot make the batch's writes durable: {err.strerror or err}") from err

    def delete(self, key: str) -> bool:
        """Delete the object ``key`` and its metadata; whether there was one to delete.

        Atomic per key: readers see the object whole or not at all. A key that is only a
        prefix of other objects raises ``Conflict`` (delete whole executions with
        ``factflow execution delete``). Raises ``InvalidKey`` and ``Unavailable`` as
        ``write`` does.
        """
        return self._service.delete(key)

    # -- reads -----------------------------------------------------------------

    def read(self, key: str) -> bytes:
        """The bytes of ``key``, whole, as of one version (never a mix of two writes).

        Raises ``NotFound`` when there is no such object, ``InvalidKey``, ``Unavailable``.
        """
        return self.provider.read(validate_key(key))

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream:
        """The object for streaming: ``.read(n)``, iteration by chunks, ``.info`` and
        ``.metadata`` of the very version being read. Close it (or use ``with``).

        Raises ``NotFound``, ``InvalidKey``, ``Unavailable``, and ``InvalidRange`` when
        ``start`` is at or past the end of a non-empty object.
        """
        return self._service.open(key, start=start, length=length)

    def metadata(self, key: str) -> dict[str, Any]:
        """The metadata blob of ``key``: computed fields, provenance, the writer's fields.

        Raises ``NotFound``, ``InvalidKey``, ``Unavailable``.
        """
        return self._service.metadata(key)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key`` (a prefix alone is not one).

        Raises ``InvalidKey``, ``Unavailable``.
        """
        return self.provider.exists(validate_key(key))

    def list(self, prefix: str = "", *, start_after: str | None = None, limit: int | None = None
             ) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a string prefix, as in S3), as a
        stream of ``ObjectInfo`` (``key``, ``size``, ``last_modified``), in byte-wise key
        order, after ``start_after`` when given, at most ``limit``.

        Metadata sidecars and internal records are never listed. Objects written while
        the stream is read may or may not appear. Raises ``InvalidKey`` for a refused
        prefix and ``Unavailable``; a ``file://`` root that does not exist lists nothing.
        """
        validate_prefix(prefix)
        return self.provider.list(prefix, start_after=start_after, limit=limit)

    # -- executions ------------------------------------------------------------

    def start_execution(self, execution_id: str) -> dict[str, Any]:
        """Mark ``execution_id`` ``running`` (``factflow storage watch`` follows it until it
        finishes); return its record. Starting again keeps the first ``started_at``.

        The record lives in storage (``_factflow/executions/<id>.json``) and is replaced
        whole, durably, as an object write is. Raises ``InvalidKey`` for an id that is not
        one key segment, ``Conflict`` while the execution is being deleted, ``Unavailable``.
        """
        return executions.set_status(self.provider, execution_id, executions.RUNNING)

    def finish_execution(self, execution_id: str, status: FinalStatus = "completed") -> dict[str, Any]:
        """Give ``execution_id`` its final status; return its record, with ``object_count``.

        Call it after the execution's last write has returned: watchers stop at this
        status, and ``object_count`` counts what is listed now. Finishing without a start
        is allowed. Raises ``BadRequest`` for another status, and as ``start_execution``.
        """
        return executions.set_status(self.provider, execution_id, status)

    def execution(self, execution_id: str) -> dict[str, Any]:
        """The record of ``execution_id``: ``status``, ``started_at``, ``finished_at``...

        Raises ``NotFound`` when it was never started nor finished, ``InvalidKey``.
        """
        return self._service.execution(execution_id)

    @contextmanager
    def running(self, execution_id: str) -> Iterator[PipelineStorage]:
        """``with storage.running(ID):`` starts the execution, then finishes it
        ``completed`` when the block ends, ``failed`` when it raises an exception,
        ``interrupted`` on ``KeyboardInterrupt`` or ``SystemExit``; the exception goes on."""
        self.start_execution(execution_id)
        try:
            yield self
        except Exception:
            self.finish_execution(execution_id, "failed")
            raise
        except BaseException:
            self.finish_execution(execution_id, "interrupted")
            raise
        self.finish_execution(execution_id, "completed")

    # -- lifetime --------------------------------------------------------------

    def check(self) -> None:
        """Raise ``Unavailable`` (``BadCredentials``, ``BucketMissing``) when the backend
        cannot be used now; return otherwise."""
        self.provider.check()

    def close(self) -> None:
        """Release connections and descriptors; the handle is not used afterwards."""
        self.provider.close()

    def __enter__(self) -> PipelineStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteBatch:
    """Writes whose directory fsyncs are paid once, at the end of ``PipelineStorage.batch``."""

    def __init__(self, storage: PipelineStorage, dir_syncs: Any):
        self._storage = storage
        self._dir_syncs = dir_syncs

    def write(self, key: str, data: bytes | BinaryIO, *, lineage: str | Sequence[str] | None = None,
              config_hash: str | None = None, content_type: str | None = None,
              metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``PipelineStorage.write``, durable once the batch's block has ended."""
        if self._dir_syncs is None:
            return self._storage.write(key, data, lineage=lineage, config_hash=config_hash,
                                       content_type=content_type, metadata=metadata)
        return self._storage.provider.write(  # type: ignore[call-arg]
            validate_key(key), data, writer_blob(metadata, lineage, config_hash), content_type=content_type,
            dir_syncs=self._dir_syncs)


def writer_blob(metadata: Mapping[str, Any] | None, lineage: str | Sequence[str] | None,
                config_hash: str | None) -> dict[str, Any]:
    """The writer's fields: ``metadata`` with ``lineage`` and ``config_hash`` over it."""
    blob = dict(metadata or {})
    if lineage is not None:
        blob["lineage"] = lineage if isinstance(lineage, str) else list(lineage)
    if config_hash is not None:
        blob["config_hash"] = config_hash
    return blob

"""The domain layer's storage: a provider's primitives, plus what the stored objects mean.

Providers keep bytes, metadata and records (``StorageProtocol``), as fsspec keeps
``AbstractFileSystem`` to files. What factflow makes of them is built here, on those
primitives only, the same for every provider:

* execution records (``read_execution``, ``write_execution``) and the execution index
  kept in step with them (``factflow_storage.execution_index``);
* the cross-execution lineage index and stage graph, written before an object is
  committed and checked after (``factflow_storage.lineage_index``): ``write`` is the
  provider's write between the two.

The registry hands out a ``Store`` for every storage it opens, so the CLI, the server,
pipelines and copies all write through it. What a provider offers beyond the protocol
(a filesystem's ``fsck`` and ``dir_syncs``, an S3 provider's client) is reached through
the store unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, Self, cast

import orjson

from factflow_storage import execution_index
from factflow_storage.executions import TERMINAL_STATUSES
from factflow_storage.lineage_index import confirm_write, guard_write
from factflow_storage.metadata import check_user_metadata
from factflow_storage.protocol import ObjectInfo, ObjectStream, PrefixInfo, StorageProtocol, WriteCondition


def execution_record_name(execution_id: str) -> str:
    return f"executions/{execution_id}.json"


class Store:
    """A provider with factflow's meaning on top; every ``StorageProtocol`` method too."""

    def __init__(self, primitives: StorageProtocol):
        self.primitives = primitives
        self.uri = primitives.uri

    def __getattr__(self, name: str) -> Any:
        # A provider's own extras (fsck, dir_syncs, root, its S3 client...): only names
        # this class does not define get here.
        if name == "primitives":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.primitives, name)

    # -- objects: the provider's write between the lineage index's two checks ----------

    def write(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None = None,
              *, content_type: str | None = None, condition: WriteCondition | None = None,
              **options: Any) -> dict[str, Any]:
        """``StorageProtocol.write``; cross-execution ``lineage`` is indexed before the
        provider commits the object, and the write is refused after it when the
        execution began to be deleted meanwhile (``lineage_index``'s handshake).
        ``options`` go to the provider (a filesystem's ``dir_syncs``)."""
        self.primitives.check_keys((key,))  # a refused key indexes nothing
        guard_write(self, key, check_user_metadata(metadata))
        blob = self.primitives.write(key, data, metadata, content_type=content_type, condition=condition,
                                     **options)
        confirm_write(self, key)
        return blob

    # -- execution records ----------------------------------------------------------

    def read_execution(self, execution_id: str) -> dict[str, Any] | None:
        """The execution's record, or None when it has none."""
        raw = self.primitives.get_record(execution_record_name(execution_id))
        return None if raw is None else orjson.loads(raw)

    def write_execution(self, execution_id: str, record: Mapping[str, Any]) -> None:
        """Replace the execution's record whole and durably, keeping the execution index
        in step (its entry first, so a kill in between leaves one entry too many, never
        none); then a finished execution is told to the provider's write hooks."""
        stale = execution_index.before_write(self, execution_id, record)
        self.primitives.put_record(execution_record_name(execution_id), orjson.dumps(dict(record)))
        execution_index.after_write(self, stale)
        if record.get("status") in TERMINAL_STATUSES:
            for hook in getattr(self.primitives, "write_hooks", ()):
                hook.execution_finished(execution_id)

    # -- the provider's primitives, as they are ---------------------------------------

    def read(self, key: str) -> bytes:
        return self.primitives.read(key)

    def exists(self, key: str) -> bool:
        return self.primitives.exists(key)

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        return self.primitives.list(prefix, start_after=start_after, limit=limit)

    def delete(self, key: str) -> None:
        self.primitives.delete(key)

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream:
        return self.primitives.open(key, start=start, length=length)

    def stat(self, key: str) -> ObjectInfo:
        return self.primitives.stat(key)

    def metadata(self, key: str) -> dict[str, Any]:
        return self.primitives.metadata(key)

    def browse(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo | PrefixInfo]:
        return self.primitives.browse(prefix, start_after=start_after)

    def put_record(self, name: str, data: bytes | BinaryIO, *, condition: WriteCondition | None = None) -> None:
        self.primitives.put_record(name, data, condition=condition)

    def open_record(self, name: str) -> BinaryIO:
        return self.primitives.open_record(name)

    def get_record(self, name: str) -> bytes | None:
        return self.primitives.get_record(name)

    def list_records(self, prefix: str, *, start_after: str | None = None,
                     first_page: int | None = None) -> Iterator[str]:
        return self.primitives.list_records(prefix, start_after=start_after, first_page=first_page)

    def delete_record(self, name: str) -> None:
        self.primitives.delete_record(name)

    def delete_many(self, keys: Sequence[str]) -> None:
        self.primitives.delete_many(keys)

    def delete_records(self, names: Iterable[str]) -> None:
        self.primitives.delete_records(names)

    def check(self) -> None:
        self.primitives.check()

    def check_keys(self, keys: Iterable[str]) -> None:
        self.primitives.check_keys(keys)

    def close(self) -> None:
        self.primitives.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_store(storage: StorageProtocol | Store) -> Store:
    """``storage`` with the domain layer on top, once: a store, or a proxy of one (the
    CLI's root check), is taken as it is."""
    if isinstance(storage, Store) or hasattr(storage, "write_execution"):
        return cast(Store, storage)
    return Store(storage)

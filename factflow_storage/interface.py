"""``Service``: what the CLI and the server call, declared once.

``StorageService`` (in process, over a provider) and ``RemoteService`` (over HTTP, the
CLI's ``--api`` mode) both satisfy it, so a command is written once against this
interface and prints the same bytes in both modes; the type checker holds both to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, ParamSpec, Protocol, TypeVar

from factflow_storage.operations.results import (ArchiveJob, Browse, CopySummary, DeletionPlan, Execution,
                                                 ExecutionPage, Health, ListPage)
from factflow_storage.protocol import ObjectInfo, ObjectStream, WriteCondition

if TYPE_CHECKING:
    from factflow_storage.operations import Operation
    from factflow_storage.watch.events import Event

P = ParamSpec("P")
R = TypeVar("R")


class Service(Protocol):
    def call(self, operation: Operation[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """A declared operation (``factflow_storage.operations``), in process or over HTTP:
        du, lineage, the pipeline graph, fsck, prune and dependencies are called this way."""
        ...

    # -- listings ------------------------------------------------------------

    def list_page(self, prefix: str = "", *, delimiter: str | None = None, route_id: str | None = None,
                  stage: str | None = None, extension: str | None = None, include_metadata: bool = True,
                  limit: int = ..., cursor: str | None = None, offset: int = 0, start_after: str | None = None,
                  contains: str | None = None, match: str | None = None) -> ListPage: ...

    def list_rows(self, prefix: str = "", *, limit: int | None = None, with_metadata: bool = False,
                  **filters: Any) -> Iterator[dict[str, Any]]: ...

    def iter_objects(self, prefix: str = "", *, start_after: str | None = None, route_id: str | None = None,
                     stage: str | None = None, extension: str | Sequence[str] | None = None,
                     contains: str | None = None, match: str | None = None) -> Iterator[ObjectInfo]: ...

    def execution_objects(self, execution_id: str, **filters: Any) -> Iterator[ObjectInfo]: ...

    def browse(self, prefix: str = "", *, start_after: str | None = None) -> Browse: ...

    # -- objects -------------------------------------------------------------

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream: ...

    def metadata(self, key: str) -> dict[str, Any]: ...

    def get_document(self, key: str) -> dict[str, Any]: ...

    def put(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None = None,
            *, content_type: str | None = None, condition: WriteCondition | None = None) -> dict[str, Any]: ...

    def delete(self, key: str) -> bool:
        """Whether an object was there to delete."""
        ...

    # -- executions ----------------------------------------------------------

    def execution(self, execution_id: str) -> Execution: ...

    def set_execution_status(self, execution_id: str, status: str, *, strict: bool = False) -> Execution: ...

    def executions(self, *, limit: int | None = None, cursor: str | None = None,
                   status: str | Sequence[str] | None = None, since: str | None = None,
                   until: str | None = None) -> ExecutionPage:
        """A page of list rows newest first, ``{"executions", "next_cursor"}``; all without ``limit``."""

    def iter_executions(self, *, cursor: str | None = None, status: str | Sequence[str] | None = None,
                        since: str | None = None, until: str | None = None) -> Iterator[dict[str, Any]]:
        """Every list row newest first, streamed page after page."""

    # -- operator tools (du, lineage, graph, fsck: declared operations, see ``call``)

    def diff(self, execution_a: str, execution_b: str, *, route_id: str | None = None,
             content: bool = False) -> Iterator[dict[str, Any]]: ...

    def copy(self, request: Mapping[str, Any]) -> CopySummary:
        """Copy ``execution_ids`` (or a ``prefix``) to the operator's named ``destination``."""
        ...

    # -- retention -----------------------------------------------------------

    def delete_executions(self, execution_ids: Sequence[str], *, confirm: bool = False,
                          force: bool = False) -> DeletionPlan: ...

    def deletions(self) -> list[dict[str, Any]]: ...

    def watch(self, execution_ids: Sequence[str], *, route_id: str | None = None, stage: str | None = None,
              extension: str | Sequence[str] | None = None, last_event_id: str | None = None,
              timeout: float | None = None) -> Iterator[Event | None]:
        """The execution's objects, then each new one, then one ``execution.completed`` per
        execution; ``None`` marks a quiet moment (a chance for a heartbeat)."""
        ...

    # -- archive jobs (``download --api``) --------------------------------------

    def prepare_archive(self, request: Mapping[str, Any]) -> ArchiveJob:
        """Start packing an archive of what ``request`` selects; the new job."""
        ...

    def archive_status(self, job_id: str) -> ArchiveJob: ...

    def open_archive(self, job_id: str) -> BinaryIO:
        """The finished zip as a stream (close it, or use it in ``with``)."""
        ...

    def delete_archive(self, job_id: str) -> None: ...

    def open_archive_stream(self, request: Mapping[str, Any]) -> BinaryIO:
        """The zip of what ``request`` selects, packed while it is read (what ``download
        --api`` uses); it is cut off before its end records if packing fails."""
        ...

    def health(self) -> Health: ...

    def close(self) -> None: ...


class RecordStore(Protocol):
    """Internal records under ``_factflow/``: what server-side jobs keep in storage."""

    def put_record(self, name: str, data: bytes | BinaryIO) -> None: ...

    def open_record(self, name: str) -> BinaryIO: ...

    def list_records(self, prefix: str, *, start_after: str | None = None,
                     first_page: int | None = None) -> Iterator[str]: ...

    def delete_record(self, name: str) -> None: ...

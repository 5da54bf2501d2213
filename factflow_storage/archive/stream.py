"""An archive packed straight into the HTTP answer (``POST .../archive/stream``).

A job stores the whole zip before its first byte can be downloaded; a stream sends each
member while the next is fetched, so a download through the API runs at the speed of the
slower of storage and network, not their sum. The packer runs in a thread and writes
into a ``Pipe``; the server's worker thread reads the pipe and sends.

Nothing is stored, so nothing expires or counts against the bytes archives may hold; a
stream takes one of the ``max_jobs`` packing slots while it runs. The zip ends only with
its central directory: a stream the packer cannot finish (a storage error, the
execution being deleted) is cut off without it, and the client's reader, which needs
the end records, reports the archive as incomplete. A client that goes away stops the
packer at its next write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from factflow_storage.archive.pipe import Pipe, PipeClosed
from factflow_storage.archive.request import ArchiveRequest
from factflow_storage.archive.worker import Progress, run_packer
from factflow_storage.errors import Deleted, StorageError
from factflow_storage.executions import DELETED, DELETING, deleted_line
from factflow_storage.service import StorageService

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
DELETION_CHECK = 0.5  # seconds between looks at the execution's record while packing
DELETION_CHECK_BYTES = 16 * 1024 * 1024


class ClientGone(StorageError):
    error_code = "client_gone"


class StreamProgress(Progress):
    """A job's progress that also stops packing once the execution is being deleted (or
    is gone): an archive of a half-deleted execution is never completed. It looks every
    ``DELETION_CHECK`` seconds and every ``DELETION_CHECK_BYTES`` packed, so a stream the
    client holds back still looks before it goes on."""

    def __init__(self, service: StorageService, execution_id: str):
        super().__init__()
        self._service = service
        self._execution_id = execution_id
        self._next_look = time.monotonic() + DELETION_CHECK
        self._next_bytes = DELETION_CHECK_BYTES

    def check(self) -> None:
        super().check()
        now = time.monotonic()
        if now < self._next_look and self.bytes_packed < self._next_bytes:
            return
        self._next_look = now + DELETION_CHECK
        self._next_bytes = self.bytes_packed + DELETION_CHECK_BYTES
        state, deletion = self._service.deletion_state(self._execution_id)
        if state == DELETED:
            raise Deleted(deleted_line(self._execution_id, deletion))
        if state == DELETING:
            raise Deleted(f"execution {self._execution_id} is being deleted")


class ArchiveStream:
    """The zip of one request as a WSGI body; ``close`` (called by the server once the
    body is sent or the client is gone) stops the packer and frees the slot."""

    def __init__(self, service: StorageService, request: ArchiveRequest,
                 on_close: Callable[[], None] = lambda: None):
        self._request = request
        self._pipe = Pipe(chunk=CHUNK)
        self._progress = StreamProgress(service, request.execution_id)
        self._on_close = on_close
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._pack, args=(service,), daemon=True,
                                        name=f"archive-stream-{request.execution_id[:16]}")
        self._thread.start()

    def _pack(self, service: StorageService) -> None:
        try:
            # Only the download client reads a stream, and it checks every sha256.
            size = run_packer(service, self._request, self._progress, self._pipe.write, verify_large=False)
            self._pipe.close()
            log.info("streamed the archive of %s: %d objects, %d bytes", self._request.execution_id,
                     self._progress.processed, size)
        except BaseException as err:  # noqa: BLE001 - handed to the sending side
            self._pipe.abort(err)
            if isinstance(err, PipeClosed) or self._progress.cancel.is_set():
                log.info("archive stream of %s stopped: the client went away", self._request.execution_id)
            else:
                log.warning("archive stream of %s cut off: %s", self._request.execution_id, err)
        finally:
            self._finished.set()

    @property
    def filename(self) -> str:
        return self._request.filename

    def __iter__(self) -> Iterator[bytes]:
        try:
            while chunk := self._pipe.read(CHUNK):
                yield chunk
        finally:
            # bottle calls ``close`` only once the first chunk is out; an archive that
            # fails or ends before that frees its slot here.
            self.close()

    def close(self) -> None:
        if not self._finished.is_set():
            self._progress.cancel.set()
            self._pipe.fail(ClientGone("the client closed the connection"))
        on_close, self._on_close = self._on_close, lambda: None
        on_close()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the packer has stopped (for tests and shutdown)."""
        return self._finished.wait(timeout)

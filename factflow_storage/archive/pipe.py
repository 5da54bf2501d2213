"""A bounded in-process pipe: one thread writes an archive, another hands it to storage.

The provider's ``put_record`` pulls from ``read`` as from any stream, so the archive goes
to storage while it is written, never whole in memory. Either end can fail the other:
the writer's ``abort`` makes the next read raise (the provider then discards its partial
upload), and the reader's ``fail`` makes the next write raise.
"""

from __future__ import annotations

import queue

from factflow_storage.errors import StorageError

CHUNK = 1024 * 1024
DEPTH = 8
_POLL = 0.25
_EOF = object()


class PipeClosed(StorageError):
    error_code = "archive_aborted"


class Pipe:
    def __init__(self, chunk: int = CHUNK, depth: int = DEPTH):
        self._queue: queue.Queue = queue.Queue(depth)
        self._chunk = chunk
        self._buffer = bytearray()
        self._item = b""  # the piece ``_current`` views
        self._current = memoryview(b"")
        self._eof = False
        self._writer_error: BaseException | None = None
        self._reader_error: BaseException | None = None

    # -- the writing end -----------------------------------------------------

    def write(self, data: bytes) -> None:
        if len(data) >= self._chunk:
            # A chunk as large as the pipe's own goes through whole: gathering it would
            # copy every byte of an archive of large objects twice more.
            if self._buffer:
                self._put(bytes(self._buffer))
                self._buffer.clear()
            self._put(bytes(data))
            return
        self._buffer += data
        while len(self._buffer) >= self._chunk:
            self._put(bytes(self._buffer[:self._chunk]))
            del self._buffer[:self._chunk]

    def close(self) -> None:
        if self._buffer:
            self._put(bytes(self._buffer))
            self._buffer.clear()
        self._put(_EOF)

    def abort(self, error: BaseException) -> None:
        self._writer_error = error
        try:
            self._queue.put_nowait(_EOF)
        except queue.Full:
            pass  # the reader checks the error before each wait

    def _put(self, item: object) -> None:
        while True:
            if self._reader_error is not None:
                raise PipeClosed(f"storing the archive failed: {self._reader_error}")
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    # -- the reading end -----------------------------------------------------

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(self._chunk):
                parts.append(chunk)
            return b"".join(parts)
        while not self._current and not self._eof:
            if self._writer_error is not None:
                raise PipeClosed(f"the archive was not completed: {self._writer_error}")
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                continue
            if item is _EOF:
                if self._writer_error is not None:
                    raise PipeClosed(f"the archive was not completed: {self._writer_error}")
                self._eof = True
            else:
                self._item = item
                self._current = memoryview(item)
        if size >= len(self._current) and len(self._current) == len(self._item):
            # A whole piece goes out as it came in: slicing it would copy every byte.
            item, self._item, self._current = self._item, b"", memoryview(b"")
            return item
        chunk = bytes(self._current[:size])
        self._current = self._current[size:]
        return chunk

    def fail(self, error: BaseException) -> None:
        self._reader_error = error

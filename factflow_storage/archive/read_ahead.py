"""A large object read ahead of the packer by a thread of its own, into a bounded queue.

Large objects were packed one after another, each waiting on its own GET; with a few
read ahead, storage serves several at once, as a parallel copy tool has it do, and the
packer finds the next object's first chunks waiting. Memory stays bounded: each object
holds at most ``DEPTH`` chunks ahead of the packer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from factflow_storage.protocol import ObjectStream

DEPTH = 16  # chunks (of the stream's 1 MiB) one object holds ahead of the packer
_POLL = 0.25
_END = object()


class ReadAhead:
    """An ``ObjectStream``'s info, metadata, length and chunks; ``close`` stops the reader."""

    def __init__(self, stream: ObjectStream, depth: int = DEPTH):
        self.info = stream.info
        self.metadata: dict[str, Any] = stream.metadata
        self.length = stream.length
        self._stream = stream
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True, name="archive-read-ahead")
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._stream:
                for chunk in self._stream:
                    if not self._put(chunk):
                        return
            self._put(_END)
        except BaseException as err:  # noqa: BLE001 - raised again in the packer
            self._put(err)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

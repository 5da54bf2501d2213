"""Large body pieces go to the socket as they are, not through waitress's buffers.

waitress copies every piece an app yields: a chunked answer frames it by concatenation
(two copies), and its output buffer takes the result into a ``BytesIO``, or a temporary
file past ``outbuf_overflow`` (1 MiB), and reads it back to send (two more). For an
archive streamed at disk speed those copies are a fifth of the server's CPU. A ``bytes``
piece cannot change under us, so ``HandOffTask`` queues a view of it instead, with the
chunk framing as separate small writes. waitress already queues ``wsgi.file_wrapper``
bodies this way, and its high-water mark still bounds what a slow client holds
(``outbuf_high_watermark``, 16 MiB).

This relies on waitress internals (``WSGITask.write``'s fields, the output buffer
interface of ``ReadOnlyFileBasedBuffer``), hence the upper bound on waitress in
setup.cfg.
"""

from __future__ import annotations

from typing import Any

from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.task import WSGITask

# Smaller pieces are cheaper to copy than to queue on their own.
HANDOFF_BYTES = 64 * 1024


class BytesView(ReadOnlyFileBasedBuffer):
    """An output buffer over one ``bytes`` piece, sent from a view of it."""

    def __init__(self, data: bytes):
        self._view = memoryview(data)

    def __len__(self) -> int:
        return len(self._view)

    def get(self, numbytes: int = -1, skip: bool = False) -> memoryview:
        chunk = self._view if numbytes < 0 else self._view[:numbytes]
        if skip:
            self._view = self._view[len(chunk):]
        return chunk

    def skip(self, numbytes: int, allow_prune: int = 0) -> None:
        self._view = self._view[numbytes:]

    def prune(self) -> None:
        pass

    def close(self) -> None:
        self._view = memoryview(b"")


class HandOffTask(WSGITask):
    def write(self, data: Any) -> None:
        if type(data) is not bytes or len(data) < HANDOFF_BYTES or not self.complete:
            return super().write(data)
        if not self.wrote_header:
            super().write(b"")  # the status line and headers, and with them the framing
        if not self.has_body:
            return super().write(data)
        channel = self.channel
        if self.chunked_response:
            channel.write_soon(b"%X\r\n" % len(data))
            channel.write_soon(BytesView(data))
            channel.write_soon(b"\r\n")
            return None
        if self.content_length is not None:
            if len(data) > self.content_length - self.content_bytes_written:
                return super().write(data)  # waitress cuts the excess and logs it
            self.content_bytes_written += len(data)
        channel.write_soon(BytesView(data))
        return None

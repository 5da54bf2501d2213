"""A one-line progress bar on stderr: objects, bytes and rate, redrawn at most 10 times a
second. Silent unless enabled (the CLI enables it on a terminal without ``--quiet``)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_REDRAW = 0.1
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(count: float) -> str:
    for unit in _UNITS:
        if abs(count) < 1024 or unit == _UNITS[-1]:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} {_UNITS[-1]}"


class ProgressBar:
    def __init__(self, enabled: bool, stream: TextIO | None = None):
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._phase = ""
        self.objects = self.bytes = 0
        self._objects_total = self._bytes_total = 0
        self._started = self._drawn_at = 0.0
        self._width = 0

    def start(self, phase: str, objects_total: int, bytes_total: int) -> None:
        with self._lock:
            self._phase = phase
            self._objects_total, self._bytes_total = objects_total, bytes_total
            self.objects = self.bytes = 0
            self._started = time.monotonic()
            self._drawn_at = 0.0
        self._draw(force=True)

    def advance(self, objects: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.objects += objects
            self.bytes += nbytes
        self._draw()

    def update(self, objects: int, nbytes: int, objects_total: int | None = None) -> None:
        with self._lock:
            self.objects, self.bytes = objects, nbytes
            if objects_total is not None:
                self._objects_total = objects_total
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._drawn_at < _REDRAW:
                return
            self._drawn_at = now
            elapsed = max(now - self._started, 1e-6)
            total_bytes = f"/{human_bytes(self._bytes_total)}" if self._bytes_total else ""
            line = (f"{self._phase:<11} {self.objects}/{self._objects_total} objects  "
                    f"{human_bytes(self.bytes)}{total_bytes}  {human_bytes(self.bytes / elapsed)}/s")
            padding = " " * max(0, self._width - len(line))
            self._width = len(line)
            self._stream.write("\r" + line + padding)
            self._stream.flush()

    def finish(self) -> None:
        if self.enabled and self._width:
            self._draw(force=True)
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0

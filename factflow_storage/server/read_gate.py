"""At most N object reads and listings at once, let in in arrival order.

waitress runs each request on one of its threads (32 by default), and every thread that
has work takes turns at the GIL. CPython hands the GIL on to whichever waiting thread the
system wakes, not the one waiting longest, so under load some requests lose many turns in
a row: 64 clients on a filesystem store, each listing 100 objects with their metadata,
reading one and its metadata, had a p99 of 430 to 500 ms where the median was 120 ms.
Threads past the gate wait their turn on a lock of their own instead, and the lock is
handed to the oldest waiter, so requests finish in about the order they came.

Only the storage routes' reads take a turn (a list page, an object's metadata, opening an
object), and only for the route's own call: the bytes the server sends afterwards do not
hold a slot, so a slow reader never keeps other requests out. Everything else is not
gated: health, the console's files and event streams must answer whatever the store is
doing, tools such as ``du`` or ``diff`` may walk a whole execution, and a filesystem write
waits for its fsync, which reads must not queue behind. The provider says how many slots
its reads want (``read_slots``); a network store sets none.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Iterator


class ReadGate:
    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError("a read gate needs at least one slot")
        self.slots = slots
        self._free = slots
        self._lock = threading.Lock()
        self._waiting: deque[threading.Lock] = deque()

    def enter(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by ``leave``, which hands this thread its slot

    def leave(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()  # the slot passes on; no newcomer takes it first
            else:
                self._free += 1

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

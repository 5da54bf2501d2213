"""At most N GET and HEAD requests in the application at once, admitted in arrival order.

waitress runs each request on one of its threads (32 by default), and every thread that
has work takes turns at the GIL. CPython hands the GIL on to whichever waiting thread the
system wakes, not the one waiting longest, so under load some requests lose many turns in
a row: 64 clients on a filesystem store, each listing 100 objects with their metadata,
reading one and its metadata, had a p99 of 430 to 500 ms where the median was 120 ms.
Threads past the gate wait their turn on a lock of their own instead, and the lock is
handed to the oldest waiter, so requests finish in about the order they came.

Only the application's call is gated: a body that the server sends afterwards (an object's
bytes, an event stream, an archive) does not hold a slot, so a slow reader or a watch that
lasts an hour never keeps other requests out. Writes are not gated: a filesystem write
waits for its fsync, and reads must not queue behind it. The provider says how many slots
its reads want (``read_slots``); a network store sets none.
"""

from __future__ import annotations

import threading
from collections import deque

GATED_METHODS = frozenset({"GET", "HEAD"})


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

    @property
    def waiting(self) -> int:
        return len(self._waiting)

"""A bounded pool for whole-history work: reading many small records at once.

One record read on S3 is a request of tens of milliseconds, mostly waiting; reading a
season of records one after another takes minutes, 32 at a time keeps up with rclone's
own ``--transfers 32``. The window bounds memory and what is in flight, whatever the
number of items.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# As many as the S3 provider's connection pool holds (s3_transfer.POOL_SIZE).
WORKERS = 32
_THREADS = "ff-read"


def ordered_map(func: Callable[[T], R], items: Iterable[T], *, workers: int = WORKERS) -> Iterator[R]:
    """``func`` over ``items`` on at most ``workers`` threads; results in input order, as a
    stream (at most ``workers * 2`` calls ahead of the consumer). Called from one of its
    own workers (a prune's plans each checking dependants) it runs in that thread, so
    nesting never multiplies the threads."""
    if threading.current_thread().name.startswith(_THREADS):
        yield from map(func, items)
        return
    window: deque[Future[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix=_THREADS) as pool:
        try:
            for item in items:
                window.append(pool.submit(func, item))
                if len(window) >= workers * 2:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:  # a consumer that stops early (or an error) waits for nothing more
                future.cancel()

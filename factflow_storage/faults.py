"""A fault hook for crash tests: ``FACTFLOW_FAULT=<point>`` makes a writer SIGKILL itself
at that named point of its write path, as an operator's ``kill -9`` could at any moment.
Providers list their points (``FAULT_POINTS``) so tests can kill at each in turn."""

from __future__ import annotations

import os
import signal

FAULT_ENV = "FACTFLOW_FAULT"


def fault(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)

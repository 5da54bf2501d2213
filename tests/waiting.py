"""Waiting for a signal, never for a guessed delay: the one polling loop the tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Generous on purpose: a loaded CI machine can be slow by an order of magnitude, and a
# deadline only costs time when something is already broken.
DEADLINE = 60.0


def eventually(condition: Callable[[], T], what: str = "", timeout: float = DEADLINE, poll: float = 0.02) -> T:
    """Return ``condition()``'s first truthy value; fail naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(poll)

"""A ``file://`` root that does not exist holds nothing to read: a read there is almost
always a mistyped path or the wrong working directory, so the CLI says so instead of
printing an empty listing. Writes still create the root."""

from __future__ import annotations

import os
from typing import Any

from factflow_storage.errors import NotFound

MISSING_ROOT = "storage root {} does not exist (writes create it; check --storage or FACTFLOW_STORAGE_URI)"
NOT_A_DIRECTORY = "storage root {} is not a directory"


def check_root(root: str) -> None:
    if os.path.isdir(root):
        return
    if os.path.exists(root):
        raise NotFound(NOT_A_DIRECTORY.format(root))
    raise NotFound(MISSING_ROOT.format(root))


class ExistingRoot:
    """A filesystem provider whose reads first check that its root exists.

    Record reads (``read_execution``) are left alone: ``execution start`` reads the
    record before it writes the first one.
    """

    _GUARDED = frozenset({"list", "browse", "open", "stat", "metadata", "read", "exists", "list_records"})

    def __init__(self, provider: Any):
        self._provider = provider

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._provider, name)
        if name not in self._GUARDED:
            return value

        def guarded(*args: Any, **kwargs: Any) -> Any:
            check_root(self._provider.root)
            return value(*args, **kwargs)

        return guarded

    def __enter__(self) -> ExistingRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self._provider.close()

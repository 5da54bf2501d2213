"""What a directory holds, as the tests compare it: relative path -> bytes."""

from __future__ import annotations

import os


def files_under(root) -> dict[str, bytes]:
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found

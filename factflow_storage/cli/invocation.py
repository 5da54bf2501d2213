"""How this command was started, for what it tells the user to run next.

Installed, it is ``factflow``. Run as ``python3 factflow.pyz`` (shiv leaves the archive's
path in ``sys.argv[0]``), a hint saying ``factflow`` names a command that is not on PATH,
so hints and completion name the interpreter and the archive instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile

INSTALLED = "factflow"


def zipapp_path() -> str | None:
    """The archive's path as given when running from a pyz, else None."""
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or not os.path.isfile(argv0) or argv0.endswith(".py"):
        return None
    try:
        return argv0 if zipfile.is_zipfile(argv0) else None
    except OSError:
        return None


def _interpreter_name() -> str:
    """The shortest name on PATH that runs this interpreter, else its full path."""
    here = os.path.realpath(sys.executable)
    for name in (os.path.basename(sys.executable), "python3"):
        found = shutil.which(name)
        if found and os.path.realpath(found) == here:
            return name
    return sys.executable


def shown_command() -> str:
    """The command as a user types it: ``factflow``, or ``python3 dist/factflow.pyz``."""
    archive = zipapp_path()
    if archive is None:
        return INSTALLED
    return f"{_interpreter_name()} {archive}"


def self_argv() -> list[str] | None:
    """For a pyz: absolute interpreter and archive, which run it from any directory."""
    archive = zipapp_path()
    if archive is None:
        return None
    return [sys.executable, os.path.abspath(archive)]

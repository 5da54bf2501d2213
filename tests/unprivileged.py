"""Run a command as a user without any privilege over files, even when the tests run as root.

Preferred: uid/gid 65534 (``nobody``) via ``setpriv``, when that user can run this very
interpreter. Where it cannot (an interpreter under root's 0700 home, as with pyenv), the
command keeps uid 0 but loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its bounding
set, so the kernel checks file modes for it exactly as for any other user. A non-root user
is unprivileged already and runs the command as is.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]
PROBE = "import factflow_storage, click, orjson"


@functools.cache
def prefix() -> tuple[str, ...] | None:
    """The command prefix that drops privileges here, or None when none works."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        return None
    for candidate in (NOBODY, NO_DAC):
        probe = subprocess.run([*candidate, sys.executable, "-c", PROBE], cwd="/", capture_output=True, timeout=30)
        if probe.returncode == 0:
            return tuple(candidate)
    return None


@functools.cache
def home() -> str:
    """A directory the unprivileged user owns: its cwd, HOME and TMPDIR. Nothing it runs
    may depend on writing where the clone is (a CI clone may be root's and 0700)."""
    path = tempfile.mkdtemp(prefix="factflow-unprivileged-", dir="/tmp")
    atexit.register(shutil.rmtree, path, True)
    os.chmod(path, 0o755)
    if prefix() == tuple(NOBODY):
        os.chown(path, 65534, 65534)
    return path


def run_kwargs() -> dict:
    """``cwd`` and ``env`` for a subprocess run under ``prefix()``."""
    env = dict(os.environ, HOME=home(), TMPDIR=home(), PYTHONDONTWRITEBYTECODE="1")
    return {"cwd": home(), "env": env}


def describe() -> str:
    chosen = prefix()
    return "current user" if chosen == () else " ".join(chosen or ["none"])

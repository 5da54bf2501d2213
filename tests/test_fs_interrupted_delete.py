"""A delete killed between an object and its sidecar: the sidecar alone is in no listing,
so the re-run of ``execution delete`` (or ``storage delete``) must still find and remove
it, with the directories it kept, leaving no trace of the execution."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import factflow_storage
from factflow_storage.faults import FAULT_ENV
from factflow_storage.providers.filesystem import FilesystemProvider
from factflow_storage.registry import parse_storage_uri
from factflow_storage.store import Store
from retention_support import raw_dirs, raw_names, write_execution


def factflow(root, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FACTFLOW_")}
    package_root = os.path.dirname(os.path.dirname(factflow_storage.__file__))  # the code under test
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "factflow_storage", "--storage", f"file://{root}", *args],
                          env=env, capture_output=True, timeout=60)


def test_execution_delete_killed_between_object_and_sidecar_is_finished_by_a_rerun(tmp_path):
    root = tmp_path / "root"
    provider = Store(FilesystemProvider(parse_storage_uri(f"file://{root}"), fsync=False))
    write_execution(provider, "keep", count=2)
    before = raw_names(provider)
    write_execution(provider, "X", count=3)
    killed = factflow(root, "execution", "delete", "X", "--yes", fault="object-unlinked")
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    rerun = factflow(root, "execution", "delete", "X", "--yes")
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert raw_names(provider) - before == {"_factflow/deletions/X.json"}
    assert not any(d.startswith("executions/X") for d in raw_dirs(provider))
    clean = factflow(root, "storage", "fsck")
    assert clean.returncode == 0, clean.stdout.decode()


def test_storage_delete_killed_between_object_and_sidecar_is_finished_by_a_rerun(tmp_path):
    root = tmp_path / "root"
    provider = FilesystemProvider(parse_storage_uri(f"file://{root}"), fsync=False)
    provider.write("executions/A/r/s/one.txt", b"1")
    killed = factflow(root, "storage", "delete", "executions/A/r/s/one.txt", fault="object-unlinked")
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert raw_names(provider) == {"executions/A/r/s/one.txt.meta.json"}
    assert factflow(root, "storage", "delete", "executions/A/r/s/one.txt").returncode == 0
    assert raw_names(provider) == set() and raw_dirs(provider) == {"."}

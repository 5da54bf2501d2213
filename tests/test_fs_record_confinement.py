"""Internal records under ``_factflow/`` are confined to the root like objects are: a link
planted among them (``_factflow/journal -> /elsewhere``) is never listed through, written
through or deleted through, so ``execution delete`` cannot remove files outside the root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from factflow_storage.providers.filesystem import FilesystemProvider
from factflow_storage.registry import parse_storage_uri


def factflow(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factflow_storage", "--storage", f"file://{root}", *args],
                          input=stdin, capture_output=True, timeout=30)


@pytest.fixture
def finished(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    assert factflow(root, "execution", "start", "e3").returncode == 0
    assert factflow(root, "storage", "put", "executions/e3/r/s/a.txt", stdin=b"abc").returncode == 0
    assert factflow(root, "execution", "finish", "e3", "--status", "completed").returncode == 0
    (outside / "e3").mkdir(parents=True)
    precious = outside / "e3" / "precious.txt"
    precious.write_bytes(b"not ours")
    return root, outside, precious


@pytest.mark.parametrize("link", ["_factflow/journal", "_factflow/journal/e3"])
def test_execution_delete_never_deletes_through_a_linked_record_directory(finished, link):
    root, outside, precious = finished
    target = outside if link.endswith("journal") else outside / "e3"
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, root / link)
    result = factflow(root, "execution", "delete", "e3", "--yes")
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    assert precious.read_bytes() == b"not ours"
    assert (outside / "e3").is_dir()


def test_records_are_neither_listed_nor_written_nor_deleted_through_a_link(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "_factflow").mkdir(parents=True)
    (outside / "jobs").mkdir(parents=True)
    (outside / "jobs" / "j1.json").write_bytes(b"{}")
    os.symlink(outside, root / "_factflow" / "archive")
    provider = FilesystemProvider(parse_storage_uri(f"file://{root}"), fsync=False)
    with pytest.raises(Exception, match="symbolic link"):
        list(provider.list_records("archive/jobs/"))
    with pytest.raises(Exception, match="symbolic link"):
        provider.put_record("archive/jobs/j2.json", b"{}")
    assert not (outside / "jobs" / "j2.json").exists()
    with pytest.raises(Exception, match="symbolic link"):
        provider.delete_records(["archive/jobs/j1.json"])
    with pytest.raises(Exception, match="symbolic link"):
        provider.delete_record("archive/jobs/j1.json")
    assert (outside / "jobs" / "j1.json").read_bytes() == b"{}"


def test_records_still_round_trip_and_leave_no_empty_directories(tmp_path):
    root = tmp_path / "root"
    provider = FilesystemProvider(parse_storage_uri(f"file://{root}"), fsync=False)
    provider.put_record("journal/e1/000-a", b"")
    provider.put_record("journal/e1/001-b", b"")
    provider.put_record("journal/e2/000-c", b"")
    assert list(provider.list_records("journal/e1/")) == ["journal/e1/000-a", "journal/e1/001-b"]
    assert list(provider.list_records("journal/")) == ["journal/e1/000-a", "journal/e1/001-b", "journal/e2/000-c"]
    assert list(provider.list_records("journal/e")) == ["journal/e1/000-a", "journal/e1/001-b", "journal/e2/000-c"]
    assert list(provider.list_records("nothing/")) == []
    provider.delete_records(["journal/e1/000-a", "journal/e1/001-b", "journal/e1/missing"])
    assert not (root / "_factflow/journal/e1").exists()
    provider.delete_record("journal/e2/000-c")
    assert list(provider.list_records("")) == []
    provider.put_record("journal/e2/000-c", b"")
    provider.delete_records(["journal/e2/000-c"])
    assert not (root / "_factflow").exists()

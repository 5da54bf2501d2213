"""Links and special files under a filesystem root: never followed, never opened in a way
that blocks, through the CLI and the HTTP API; output errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from factflow_storage.providers.filesystem import FilesystemProvider
from factflow_storage.registry import parse_storage_uri
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

KEY = "executions/s/r/s/passwd"


def factflow(root: Path, *args: str, stdin: bytes | None = None, stdout=subprocess.PIPE):
    return subprocess.run([sys.executable, "-m", "factflow_storage", "--storage", f"file://{root}", *args],
                          input=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=20)


def one_line_error(result) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == 1, (result.returncode, stderr)
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr
    return stderr


@pytest.fixture
def planted(tmp_path):
    """A root holding a link to a file outside, a linked directory, and an outside tree."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "executions/s/r/s").mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(b"outside the root")
    os.symlink(secret, root / KEY)
    os.symlink(outside, root / "executions/s/r/linked")
    return root, outside, secret


def test_cli_never_reads_writes_or_deletes_through_a_link(planted):
    root, outside, secret = planted
    assert b"outside" not in factflow(root, "storage", "get", KEY).stdout
    one_line_error(factflow(root, "storage", "get", KEY))
    one_line_error(factflow(root, "storage", "get", "executions/s/r/linked/secret.txt"))
    one_line_error(factflow(root, "storage", "put", "executions/s/r/linked/new.txt", stdin=b"x"))
    assert not (outside / "new.txt").exists()
    one_line_error(factflow(root, "storage", "delete", "executions/s/r/linked/secret.txt"))
    assert secret.read_bytes() == b"outside the root"
    listed = factflow(root, "storage", "list", "--prefix", "executions/s/r/linked/")
    assert listed.returncode == 0 and listed.stdout == b""
    # Writing over a link replaces the link itself; the file it pointed at is untouched.
    assert factflow(root, "storage", "put", KEY, stdin=b"inside").returncode == 0
    assert secret.read_bytes() == b"outside the root"
    assert factflow(root, "storage", "get", KEY).stdout == b"inside"
    assert not (root / KEY).is_symlink()


def test_special_files_are_refused_not_read(tmp_path):
    root = tmp_path / "root"
    store = FilesystemProvider(parse_storage_uri(f"file://{root}"))
    store.write("a/zero", b"bytes")
    os.unlink(root / "a/zero.meta.json")
    os.symlink("/dev/zero", root / "a/zero.meta.json")
    os.mkfifo(root / "a/fifo")
    store.write("a/dirsidecar", b"bytes")
    os.unlink(root / "a/dirsidecar.meta.json")
    os.mkdir(root / "a/dirsidecar.meta.json")
    assert "link" in one_line_error(factflow(root, "storage", "metadata", "a/zero"))
    assert "special file" in one_line_error(factflow(root, "storage", "get", "a/fifo"))
    assert "directory" in one_line_error(factflow(root, "storage", "metadata", "a/dirsidecar"))


def test_unreadable_objects_fail_in_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    root = tmp_path / "root"
    FilesystemProvider(parse_storage_uri(f"file://{root}")).write("a/b", b"x")
    os.chmod(root / "a/b", 0)
    one_line_error(factflow(root, "storage", "get", "a/b"))


def test_api_never_follows_links_or_hangs_on_a_fifo(planted):
    root, outside, secret = planted
    os.mkfifo(root / "executions/s/r/s/fifo")
    service = StorageService(FilesystemProvider(parse_storage_uri(f"file://{root}")))
    base = "/api/v1/storage/objects/"
    with running_server(service) as url:
        for key in (KEY, "executions/s/r/linked/secret.txt", "executions/s/r/s/fifo"):
            reply = http_request(url, "GET", base + key)
            assert reply.status >= 400 and b"outside the root" not in reply.body
            assert set(reply.json()) == {"detail", "error_code", "timestamp"}
            reply = http_request(url, "GET", base + key + "/metadata")
            assert reply.status >= 400
        reply = http_request(url, "PUT", base + "executions/s/r/linked/new.txt", body=b"x",
                             headers={"Content-Type": "application/octet-stream"})
        assert reply.status >= 400, reply.body
        assert not (outside / "new.txt").exists()
        reply = http_request(url, "DELETE", base + "executions/s/r/linked/secret.txt")
        assert secret.exists()
        # The server still answers: no worker is stuck on the FIFO.
        assert http_request(url, "GET", "/api/v1/storage/objects?prefix=executions/").status == 200


@pytest.mark.parametrize("args", [("storage", "get", "a/b"), ("storage", "list"),
                                  ("storage", "list", "--output", "json"), ("storage", "metadata", "a/b")])
def test_a_full_output_is_one_line_and_exit_1(tmp_path, args):
    root = tmp_path / "root"
    FilesystemProvider(parse_storage_uri(f"file://{root}")).write("a/b", b"x" * 100_000)
    with open("/dev/full", "wb") as full:
        stderr = one_line_error(factflow(root, *args, stdout=full))
    assert "No space left" in stderr


def test_a_blob_past_the_limit_is_refused_at_write_time(tmp_path):
    from factflow_storage.errors import TooLarge
    from factflow_storage.metadata import MAX_METADATA_BYTES

    store = FilesystemProvider(parse_storage_uri(f"file://{tmp_path}/root"))
    with pytest.raises(TooLarge):
        store.write("a/b", b"x", {"pad": "x" * MAX_METADATA_BYTES})
    assert not store.exists("a/b")
    assert orjson.loads(orjson.dumps(store.write("a/b", b"x", {"pad": "y" * 1000})))["pad"] == "y" * 1000

"""Links and special files under a filesystem root: never followed, never opened in a way
that blocks, through the CLI and the HTTP API; output errors are one line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import pytest

from factflow_storage.providers.filesystem import FilesystemProvider
from factflow_storage.registry import parse_storage_uri
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

import unprivileged

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


@pytest.fixture
def unreadable_root():
    """A root under /tmp (pytest's own tmp dirs are 0700 to root) reachable by an
    unprivileged user, holding an object, a sidecar and a directory that user cannot read,
    and a file beside the root that nothing may touch."""
    if unprivileged.prefix() is None:
        # tests/install-deps.sh runs as root on a system with util-linux: never skip there.
        pytest.fail("running as root without setpriv: cannot drop the privilege over files")
    top = Path(tempfile.mkdtemp(prefix="factflow-perm-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        root = top / "root"
        store = FilesystemProvider(parse_storage_uri(f"file://{root}"))
        for key in ("a/object", "a/sidecar", "shut/inner", "open/fine"):
            store.write(key, b"secret " + key.encode())
        beside = top / "beside.txt"
        beside.write_bytes(b"beside the root")
        for path in [top, *root.rglob("*"), root]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(root / "a/object", 0)
        os.chmod(root / "a/sidecar.meta.json", 0)
        os.chmod(root / "shut", 0)
        yield root, beside
    finally:
        os.chmod(top / "root/shut", 0o755)
        shutil.rmtree(top)


def snapshot(top: Path) -> dict[str, tuple[int, int, int]]:
    return {str(path): (path.lstat().st_mode, path.lstat().st_size, path.lstat().st_mtime_ns)
            for path in sorted(top.rglob("*"))}


def as_unprivileged(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*unprivileged.prefix(), sys.executable, "-m", "factflow_storage",
                           "--storage", f"file://{root}", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=30, **unprivileged.run_kwargs())


def test_unreadable_objects_fail_in_one_line_through_the_cli(unreadable_root):
    root, beside = unreadable_root
    before = snapshot(root.parent)
    for args in (("get", "a/object"), ("metadata", "a/object"), ("get", "a/sidecar"),
                 ("metadata", "a/sidecar"), ("get", "shut/inner"), ("metadata", "shut/inner"),
                 ("list", "--prefix", "shut/"), ("list",)):
        result = as_unprivileged(root, "storage", *args)
        assert b"secret" not in result.stdout, (args, unprivileged.describe())
        assert "Permission denied" in one_line_error(result), args
    # What the user may read still reads; nothing in or beside the root changed.
    fine = as_unprivileged(root, "storage", "get", "open/fine")
    assert (fine.returncode, fine.stdout) == (0, b"secret open/fine"), fine.stderr
    assert snapshot(root.parent) == before
    assert beside.read_bytes() == b"beside the root"


def test_unreadable_objects_are_json_errors_through_a_served_api(unreadable_root):
    root, beside = unreadable_root
    before = snapshot(root.parent)
    server = subprocess.Popen([*unprivileged.prefix(), sys.executable, "-m", "factflow_storage",
                               "--storage", f"file://{root}", "serve", "--port", "0", "--threads", "2"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              **unprivileged.run_kwargs())
    try:
        line = server.stdout.readline().decode()
        assert line.startswith("serving on http://"), line + server.stderr.read().decode()
        url = line.split()[-1]
        base = "/api/v1/storage/objects"
        for path in (f"{base}/a/object", f"{base}/a/object/metadata", f"{base}/a/sidecar",
                     f"{base}/a/sidecar/metadata", f"{base}/shut/inner", f"{base}/shut/inner/metadata",
                     f"{base}?prefix=shut/", base):
            reply = http_request(url, "GET", path)
            assert reply.status >= 400 and b"secret" not in reply.body, (path, reply.status, reply.body)
            assert set(reply.json()) == {"detail", "error_code", "timestamp"}, path
            assert "Permission denied" in reply.json()["detail"], (path, reply.body)
        reply = http_request(url, "GET", f"{base}/open/fine")
        assert (reply.status, reply.body) == (200, b"secret open/fine")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
        stderr = server.stderr.read().decode()
        server.stdout.close()
        server.stderr.close()
    assert "Traceback" not in stderr, stderr
    assert snapshot(root.parent) == before
    assert beside.read_bytes() == b"beside the root"


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


@pytest.mark.parametrize("size", [100, 3_000_000])
def test_a_full_output_of_a_plain_get_is_one_line_and_exit_1(tmp_path, size):
    # `storage get KEY` alone, the storage from the environment: the click-free path.
    root = tmp_path / "root"
    FilesystemProvider(parse_storage_uri(f"file://{root}")).write("a/b", b"x" * size)
    env = {name: value for name, value in os.environ.items() if not name.startswith("FACTFLOW_")}
    env.update(FACTFLOW_STORAGE_URI=f"file://{root}", FACTFLOW_CONFIG=os.devnull)
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", "factflow_storage", "storage", "get", "a/b"], env=env,
                                stdout=full, stderr=subprocess.PIPE, timeout=20)
    assert "No space left" in one_line_error(result)


def test_a_blob_past_the_limit_is_refused_at_write_time(tmp_path):
    from factflow_storage.errors import TooLarge
    from factflow_storage.metadata import MAX_METADATA_BYTES

    store = FilesystemProvider(parse_storage_uri(f"file://{tmp_path}/root"))
    with pytest.raises(TooLarge):
        store.write("a/b", b"x", {"pad": "x" * MAX_METADATA_BYTES})
    assert not store.exists("a/b")
    assert orjson.loads(orjson.dumps(store.write("a/b", b"x", {"pad": "y" * 1000})))["pad"] == "y" * 1000

"""``factflow storage get`` hands the bytes of a filesystem object to the kernel
(copy_file_range into a file, splice into a pipe) and writes the same bytes as before,
wherever stdout points, from the version it opened."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

DATA = os.urandom(3 * 1024 * 1024 + 17)
KEY = "exec-1/route/stage/blob.bin"


@pytest.fixture
def stored(file_storage):
    provider = file_storage.open()
    provider.write(KEY, DATA)
    yield file_storage, provider
    provider.close()


def _get(target, *, stdout, strace: str | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "factflow_storage", "storage", "get", KEY]
    if strace:
        argv = ["strace", "-f", "-qq", "-e", f"trace={strace}", "-o", strace_log(strace), *argv]
    return subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, env=target.cli_env(), timeout=60)


def strace_log(name: str) -> str:
    return os.path.join(os.environ.get("TMPDIR", "/tmp"), f"factflow-get-{os.getpid()}-{name}.strace")


def test_into_a_file_by_copy_file_range(stored, tmp_path):
    target, _ = stored
    out = tmp_path / "out.bin"
    with open(out, "wb") as handle:
        run = _get(target, stdout=handle, strace="copy_file_range")
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == DATA
    with open(strace_log("copy_file_range")) as log:
        calls = [line for line in log if "copy_file_range(" in line and "= -1" not in line]
    os.unlink(strace_log("copy_file_range"))
    assert calls, "no copy_file_range call succeeded"


def test_into_a_pipe_by_splice(stored):
    target, _ = stored
    run = _get(target, stdout=subprocess.PIPE, strace="splice")
    assert run.returncode == 0, run.stderr
    assert run.stdout == DATA
    with open(strace_log("splice")) as log:
        calls = [line for line in log if "splice(" in line and "= -1" not in line]
    os.unlink(strace_log("splice"))
    assert calls, "no splice call succeeded"


def test_appending_to_a_file_falls_back_and_keeps_what_was_there(stored, tmp_path):
    target, _ = stored
    out = tmp_path / "out.bin"
    out.write_bytes(b"head:")
    with open(out, "ab") as handle:  # copy_file_range refuses O_APPEND
        run = _get(target, stdout=handle)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == b"head:" + DATA


def test_into_a_socket(stored):
    target, _ = stored
    ours, theirs = socket.socketpair()
    received = bytearray()

    def drain() -> None:
        while chunk := theirs.recv(1 << 16):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with ours:
        run = _get(target, stdout=ours.fileno())
    reader.join(timeout=30)
    theirs.close()
    assert run.returncode == 0, run.stderr
    assert bytes(received) == DATA


def test_a_range_from_the_open_version_after_a_replace(stored, tmp_path):
    _, provider = stored
    out = tmp_path / "range.bin"
    with provider.open(KEY, start=1000, length=2 * 1024 * 1024) as stream:
        provider.write(KEY, b"the next version")  # an atomic replace: the open file stays the old one
        with open(out, "wb") as handle:
            handle.write(b">")
            stream.copy_to(handle)
    assert out.read_bytes() == b">" + DATA[1000:1000 + 2 * 1024 * 1024]


def test_into_a_closed_pipe_exits_0(stored):
    target, _ = stored
    run = subprocess.run(f"{sys.executable} -m factflow_storage storage get {KEY} | head -c 10 | wc -c",
                         shell=True, capture_output=True, text=True, env=target.cli_env(), timeout=60)
    assert run.stdout.strip() == "10"
    assert "Traceback" not in run.stderr

"""Filesystem writes under concurrency and SIGKILL: a key always reads whole, at one version."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from factflow_storage.providers.filesystem import FilesystemProvider
from factflow_storage.faults import FAULT_ENV
from factflow_storage.providers.fs_write import FAULT_POINTS
from factflow_storage.registry import parse_storage_uri

KEY = "executions/e1/r/s/shared.bin"
WRITERS = 8
ROUNDS = 16


def _payload(writer: int, round_: int) -> tuple[bytes, dict]:
    # Sizes and metadata differ per writer, so a sidecar beside another writer's bytes shows.
    size = 1 + writer * 37_000 + round_ * 11
    data = hashlib.sha256(f"{writer}/{round_}".encode()).digest() * (size // 32 + 1)
    metadata = {"writer": writer, "round": round_, "pad": "x" * (writer * 600)}
    return data[:size], metadata


def _writer(root: str, writer: int, barrier, rounds: int) -> None:
    provider = FilesystemProvider(parse_storage_uri(f"file://{root}"))
    for round_ in range(rounds):
        data, metadata = _payload(writer, round_)
        barrier.wait()
        provider.write(KEY, data, metadata)
        barrier.wait()  # the checker reads between rounds
        barrier.wait()


def assert_whole(provider: FilesystemProvider, key: str, allowed: list[bytes]) -> bytes:
    with provider.open(key) as stream:
        data = stream.read()
        blob = stream.metadata
    assert data in allowed
    assert blob["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert blob["content_length"] == len(data)
    return data


def test_concurrent_writers_of_one_key_leave_one_whole_version(tmp_path):
    """N processes x M rounds on one key: after each round bytes and metadata agree."""
    root = str(tmp_path / "root")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WRITERS + 1)
    procs = [ctx.Process(target=_writer, args=(root, w, barrier, ROUNDS)) for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    provider = FilesystemProvider(parse_storage_uri(f"file://{root}"))
    unreadable = 0
    try:
        for round_ in range(ROUNDS):
            barrier.wait(timeout=60)
            barrier.wait(timeout=60)
            written = [_payload(w, round_)[0] for w in range(WRITERS)]
            try:
                data = assert_whole(provider, KEY, written)
            except Exception:
                unreadable += 1
            else:
                assert provider.metadata(KEY)["writer"] == written.index(data)
            barrier.wait(timeout=60)
    finally:
        for proc in procs:
            proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0] * WRITERS
    assert unreadable == 0, f"{unreadable} of {ROUNDS} rounds left {KEY} unreadable"


def _factflow(root: Path, *args: str, env: dict | None = None, strace: list[str] | None = None):
    command = [sys.executable, "-m", "factflow_storage", "--storage", f"file://{root}", *args]
    return subprocess.run((strace or []) + command, capture_output=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_a_writer_killed_at_any_step_leaves_old_or_new(tmp_path, point):
    root = tmp_path / "root"
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(b"old version " * 1000)
    new.write_bytes(b"the new one " * 3000)
    assert _factflow(root, "storage", "put", KEY, "--file", str(old)).returncode == 0
    killed = _factflow(root, "storage", "put", KEY, "--file", str(new), "--metadata", '{"v": 2}',
                       env={FAULT_ENV: point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    got = _factflow(root, "storage", "get", KEY)
    assert got.returncode == 0, got.stderr
    assert got.stdout in (old.read_bytes(), new.read_bytes())
    blob = orjson.loads(_factflow(root, "storage", "metadata", KEY, "--output", "json").stdout)
    assert blob["checksum"] == "sha256:" + hashlib.sha256(got.stdout).hexdigest()
    # A second write after the crash publishes cleanly.
    assert _factflow(root, "storage", "put", KEY, "--file", str(new)).returncode == 0
    assert _factflow(root, "storage", "get", KEY).stdout == new.read_bytes()


@pytest.mark.parametrize("when", [1, 2])
def test_a_kill_at_either_rename_keeps_the_previous_version(tmp_path, when):
    """The issue's reproduction: SIGKILL injected at the first or second rename of a put."""
    root = tmp_path / "root"
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(b"old")
    new.write_bytes(b"new bytes")
    assert _factflow(root, "storage", "put", KEY, "--file", str(old)).returncode == 0
    strace = ["strace", "-f", "-o", os.devnull, "-e",
              f"inject=rename,renameat,renameat2:signal=KILL:when={when}"]
    killed = _factflow(root, "storage", "put", KEY, "--file", str(new), strace=strace)
    assert killed.returncode != 0
    got = _factflow(root, "storage", "get", KEY)
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"old"


# Each system call a put makes in its write path (and nowhere else in the process), with
# how many times it makes it: a SIGKILL is injected at every one of these boundaries.
_WRITE_PATH_SYSCALLS = {"flock": 3, "fchmod": 2, "write": 2, "fsync": 3, "renameat": 2}


@pytest.mark.parametrize("syscall,when", [(name, n) for name, count in _WRITE_PATH_SYSCALLS.items()
                                          for n in range(1, count + 1)])
def test_a_kill_at_every_syscall_of_the_write_path_leaves_old_or_new(tmp_path, syscall, when):
    root = tmp_path / "root"
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(b"old" * 5000)
    new.write_bytes(b"new" * 7000)
    assert _factflow(root, "storage", "put", KEY, "--file", str(old)).returncode == 0
    strace = ["strace", "-f", "-o", os.devnull, "-e", f"inject={syscall}:signal=KILL:when={when}"]
    killed = _factflow(root, "storage", "put", KEY, "--file", str(new), strace=strace)
    assert killed.returncode != 0  # the kill landed inside the put
    got = _factflow(root, "storage", "get", KEY)
    assert got.returncode == 0, got.stderr
    assert got.stdout in (old.read_bytes(), new.read_bytes())
    blob = orjson.loads(_factflow(root, "storage", "metadata", KEY, "--output", "json").stdout)
    assert blob["checksum"] == "sha256:" + hashlib.sha256(got.stdout).hexdigest()

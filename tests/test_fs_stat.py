"""The filesystem provider's stat calls that keep the GIL (``providers/fs_stat.py``): the
same answers and errors as ``os.stat``, no hand-off of the GIL, and only where the storage
root is on a local filesystem."""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading
import time

import pytest

from factflow_storage import create_storage_provider
from factflow_storage.providers.fs_stat import LOCAL_TYPES, StatCalls, file_signature, filesystem_type


@pytest.fixture
def held(tmp_path) -> StatCalls:
    # A mount table that calls everything ext4: the held calls are tested whatever the
    # filesystem of this machine's temp directory (statx answers on any of them).
    calls = StatCalls()
    assert calls.hold_gil(str(tmp_path), "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    return calls


@pytest.fixture
def directory(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def test_answers_are_os_stat_s_for_every_kind_of_entry(held, tmp_path, directory):
    (tmp_path / "file").write_bytes(b"x" * 12345)
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("file")
    (tmp_path / "dangling").symlink_to("nowhere")
    os.mkfifo(tmp_path / "fifo")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "sock"))
    os.utime(tmp_path / "file", ns=(1_234_567_890_123_456_789, 1_600_000_000_987_654_321))
    try:
        for name in ("file", "dir", "link", "dangling", "fifo", "sock", "."):
            assert held.at(name, directory) == os.stat(name, dir_fd=directory, follow_symlinks=False), name
            # The float times too, which stat_result's equality leaves out.
            mine, theirs = held.at(name, directory), os.stat(name, dir_fd=directory, follow_symlinks=False)
            assert (mine.st_atime, mine.st_mtime, mine.st_ctime) == (theirs.st_atime, theirs.st_mtime, theirs.st_ctime)
            assert (mine.st_mtime_ns, mine.st_ctime_ns, mine.st_dev, mine.st_rdev, mine.st_blocks) == \
                (theirs.st_mtime_ns, theirs.st_ctime_ns, theirs.st_dev, theirs.st_rdev, theirs.st_blocks)
            assert held.signature(name, directory) == (theirs.st_mode, file_signature(theirs)), name
        with open(tmp_path / "file", "rb") as handle:
            assert held.of(handle.fileno()) == os.fstat(handle.fileno())
        assert held.of(directory) == os.fstat(directory)
    finally:
        listener.close()


def test_errors_are_os_stat_s(held, tmp_path, directory):
    (tmp_path / "file").write_bytes(b"x")
    for name, error in (("missing", FileNotFoundError), ("file/below", NotADirectoryError),
                        ("nul\0name", ValueError), ("x" * 300, OSError)):
        with pytest.raises(error) as theirs:
            os.stat(name, dir_fd=directory, follow_symlinks=False)
        for call in (held.at, held.signature):
            with pytest.raises(error) as mine:
                call(name, directory)
            assert type(mine.value) is type(theirs.value)
            assert getattr(mine.value, "errno", None) == getattr(theirs.value, "errno", None)
    with pytest.raises(OSError) as closed:
        held.of(987_654)
    assert closed.value.errno == errno.EBADF


def _turns_taken_by_another_thread(call) -> int:
    """How often a spinning thread got the GIL while ``call`` ran 300 times.

    With a switch interval far beyond the test, the GIL changes hands only when its holder
    lets go of it in a call; the spinning thread lets go of it on every turn."""
    turns = [0]
    spinning = threading.Event()
    done = threading.Event()

    def spin() -> None:
        spinning.set()
        while not done.is_set():
            turns[0] += 1
            time.sleep(0)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    spinner = threading.Thread(target=spin)
    try:
        spinner.start()
        assert spinning.wait(30), "the spinning thread did not start"
        before = turns[0]
        for _ in range(300):
            call()
        taken = turns[0] - before
    finally:
        done.set()
        spinner.join()
        sys.setswitchinterval(interval)
    return taken


def _lets_go() -> None:
    # Lets go of the GIL long enough for a waiting thread to take it every time.
    time.sleep(0.0002)


def test_held_calls_never_hand_the_gil_to_another_thread(held, tmp_path, directory):
    (tmp_path / "file").write_bytes(b"x")
    # The test can fail: a call that lets go of the GIL lets the other thread run.
    assert _turns_taken_by_another_thread(_lets_go) > 0
    assert _turns_taken_by_another_thread(lambda: held.at("file", directory)) == 0
    assert _turns_taken_by_another_thread(lambda: held.of(directory)) == 0
    assert _turns_taken_by_another_thread(lambda: held.signature("file", directory)) == 0


MOUNTS = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/data rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
41 22 0:36 / /srv/data/local rw - xfs /dev/sdb1 rw
42 22 0:37 / /mnt/with\\040space rw - tmpfs tmpfs rw
43 22 0:38 / /mnt/over rw - ext4 /dev/sdc1 rw
44 43 0:39 / /mnt/over rw - cifs //host/share rw
"""


def test_the_filesystem_type_is_the_innermost_latest_mount():
    assert filesystem_type("/home/someone", MOUNTS) == "ext4"
    assert filesystem_type("/srv/data/x/y", MOUNTS) == "nfs4"
    assert filesystem_type("/srv/data", MOUNTS) == "nfs4"
    assert filesystem_type("/srv/data/local/storage", MOUNTS) == "xfs"
    assert filesystem_type("/srv/datastore", MOUNTS) == "ext4"  # a longer name is not below /srv/data
    assert filesystem_type("/mnt/with space/storage", MOUNTS) == "tmpfs"
    assert filesystem_type("/mnt/over/storage", MOUNTS) == "cifs"  # mounted over the ext4
    assert filesystem_type("/anything", "") is None


def test_a_network_filesystem_keeps_os_stat(tmp_path, directory):
    calls = StatCalls()
    nfs_everywhere = "22 1 0:35 / / rw - nfs4 server:/export rw\n"
    assert calls.hold_gil(str(tmp_path), nfs_everywhere) is False
    assert calls.holds_gil is False
    assert (calls.at, calls.of, calls.signature) == (StatCalls().at, os.fstat, StatCalls().signature)


def test_only_a_serving_provider_switches_and_its_answers_stay_the_same(tmp_path):
    provider = create_storage_provider(f"file://{tmp_path}/storage")
    try:
        provider.write("executions/e/r/s/m1", b"one", {"n": 1})
        before = [(info.key, info.size, blob) for info, blob in provider.list_with_metadata("executions/")]
        stats = provider.primitives.stats if hasattr(provider, "primitives") else provider.stats
        assert stats.holds_gil is False  # the CLI's single thread keeps the cheaper calls
        provider.before_serving()
        if filesystem_type(str(tmp_path)) in LOCAL_TYPES:
            assert stats.holds_gil is True
        after = [(info.key, info.size, blob) for info, blob in provider.list_with_metadata("executions/")]
        assert after == before
        assert provider.read("executions/e/r/s/m1") == b"one"
        assert provider.metadata("executions/e/r/s/m1")["n"] == 1
    finally:
        provider.close()

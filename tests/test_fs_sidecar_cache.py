"""The filesystem provider's sidecar cache serves only what is on disk: a sidecar changed
in place, with its size and mtime kept, is read again, by the provider and by a listing
with metadata over HTTP."""

from __future__ import annotations

import os
import time
import urllib.request

import orjson
import pytest

from factflow_storage.keys import SIDECAR_SUFFIX
from factflow_storage.providers.fs_sidecar_cache import SidecarCache
from factflow_storage.service import StorageService
from server_fixture import running_server

KEY = "executions/e1/route/stage/msg-0001.json"
SETTLE_NS = 20_000_000  # the test's own settle time, so it waits milliseconds, not 0.1 s


def settled(path: str, settle_ns: int) -> None:
    """Wait until the file's last change is older than the cache's settle time."""
    deadline = time.monotonic() + 30
    while time.time_ns() - os.stat(path).st_ctime_ns <= settle_ns * 2:
        assert time.monotonic() < deadline, "the file's ctime never settled"
        time.sleep(0.005)


def edit_in_place(path: str, old: bytes, new: bytes) -> None:
    """Rewrite ``old`` as ``new`` (same length) in the file itself, then put its times back."""
    assert len(old) == len(new)
    before = os.stat(path)
    with open(path, "r+b") as handle:
        data = handle.read()
        assert data.count(old) == 1
        handle.seek(0)
        handle.write(data.replace(old, new))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


@pytest.fixture
def provider(file_storage):
    opened = file_storage.open()
    opened.primitives.sidecars = SidecarCache(settle_ns=SETTLE_NS)  # the provider under the store keeps it
    yield opened
    opened.close()


def sidecar_path(provider) -> str:
    return os.path.join(provider.root, KEY + SIDECAR_SUFFIX)


def test_an_unchanged_sidecar_is_served_from_the_cache(provider):
    provider.write(KEY, b"{}", {"adapter": "aaaa"})
    settled(sidecar_path(provider), SETTLE_NS)
    assert provider.metadata(KEY)["adapter"] == "aaaa"
    hits = provider.sidecars.hits
    assert provider.metadata(KEY)["adapter"] == "aaaa"
    assert provider.sidecars.hits == hits + 1


def test_a_sidecar_changed_in_place_with_size_and_mtime_kept_is_read_again(provider):
    provider.write(KEY, b"{}", {"adapter": "aaaa"})
    path = sidecar_path(provider)
    settled(path, SETTLE_NS)
    assert provider.metadata(KEY)["adapter"] == "aaaa"
    assert provider.metadata(KEY)["adapter"] == "aaaa"  # now from the cache

    edit_in_place(path, b'"aaaa"', b'"bbbb"')
    assert provider.metadata(KEY)["adapter"] == "bbbb"
    # Changed again within the settle time of the first change: still never stale.
    edit_in_place(path, b'"bbbb"', b'"cccc"')
    assert provider.metadata(KEY)["adapter"] == "cccc"


def test_a_listing_with_metadata_over_http_is_never_stale(provider):
    service = StorageService(provider)
    for n in range(3):
        service.put(f"executions/e1/route/stage/msg-000{n + 1}.json", b"{}", {"adapter": "aaaa"})
    path = sidecar_path(provider)
    settled(path, SETTLE_NS)
    with running_server(service) as url:
        def adapters() -> list[str]:
            with urllib.request.urlopen(f"{url}/api/v1/storage/objects?prefix=executions/e1/&include_metadata=true") as reply:
                body = orjson.loads(reply.read())
            return [row["metadata"]["adapter"] for row in body["objects"]]

        assert adapters() == ["aaaa"] * 3
        assert adapters() == ["aaaa"] * 3
        edit_in_place(path, b'"aaaa"', b'"bbbb"')
        assert adapters() == ["bbbb", "aaaa", "aaaa"]


def test_a_listing_with_metadata_reads_what_one_read_each_would(provider):
    service = StorageService(provider)
    keys = [f"executions/e1/r{n % 3}/s{n % 2}/msg-{n:04d}.json" for n in range(12)]
    for n, key in enumerate(keys):
        service.put(key, b"{}", {"adapter": f"a{n}"})
    # One written by another tool (no sidecar) and one mid-swap-like (sidecar of another inode).
    foreign = os.path.join(provider.root, "executions/e1/r0/s0/foreign.bin")
    with open(foreign, "wb") as handle:
        handle.write(b"bytes from elsewhere")
    replacement = os.path.join(os.path.dirname(provider.root), "replacement")
    with open(replacement, "wb") as handle:
        handle.write(b"{}")
    os.replace(replacement, os.path.join(provider.root, keys[0]))  # a new inode, the old sidecar
    rows = list(service.list_rows("executions/e1/", with_metadata=True))
    assert [row["key"] for row in rows] == sorted([*keys, "executions/e1/r0/s0/foreign.bin"])
    for row in rows:
        assert row["metadata"] == provider.metadata(row["key"]), row["key"]

"""The filesystem's listing with metadata in one pass answers what a listing and a
metadata read per object answer, and its directory cache never serves what the disk no
longer holds: objects added, deleted, renamed over, and sidecars changed in place, by
this process or another, show on the very next page (in process and over HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.request

import orjson
import pytest

from factflow_storage import create_storage_provider
from factflow_storage.keys import SIDECAR_SUFFIX
from factflow_storage.providers.fs_listing import DirectoryCache, RowCache
from factflow_storage.providers.fs_sidecar_cache import SidecarCache
from factflow_storage.providers.fs_write import INODE_FIELD
from factflow_storage.service import StorageService
from server_fixture import running_server
from test_fs_sidecar_cache import edit_in_place

SETTLE_NS = 20_000_000  # the test's own settle time, so it waits milliseconds, not 0.1 s
PREFIX = "executions/e1/route/stage/"


@pytest.fixture
def store(file_storage):
    opened = file_storage.open()
    # The caches are the provider's, under the store; short settle times keep the waits short.
    opened.primitives.directories = DirectoryCache(settle_ns=SETTLE_NS)
    opened.primitives.sidecars = SidecarCache(settle_ns=SETTLE_NS)
    opened.primitives.rows = RowCache(settle_ns=SETTLE_NS)
    yield opened
    opened.close()


def path_of(store, key: str) -> str:
    return os.path.join(store.root, key)


def settled(*paths: str) -> None:
    """Wait until each file's (or directory's) last change is older than the caches' settle time."""
    deadline = time.monotonic() + 30
    for path in paths:
        while time.time_ns() - os.stat(path).st_ctime_ns <= SETTLE_NS * 2:
            assert time.monotonic() < deadline, f"{path} never settled"
            time.sleep(0.005)


def reference_page(service: StorageService, **params) -> dict:
    """The page as a listing without metadata and one metadata read per object give it."""
    page = service.list_page(include_metadata=False, **params)
    for row in page["objects"]:
        blob = service.metadata(row["key"])
        row.update(content_type=blob.get("content_type"), metadata=blob)
    return page


def cached_page(store, service: StorageService, **params) -> dict:
    """A page listed once to fill the directory cache, then again from it."""
    service.list_page(**params)
    hits = store.primitives.directories.hits
    page = service.list_page(**params)
    if page["objects"]:
        assert store.primitives.directories.hits > hits, "the second page did not use the directory cache"
    return page


def test_pages_with_metadata_match_a_listing_and_a_read_per_object(store):
    service = StorageService(store)
    keys = [f"executions/e1/r{n % 3}/s{n % 2}/msg-{n:03d}.{'json' if n % 4 else 'md'}" for n in range(40)]
    keys += ["executions/e1/a-b", "executions/e1/a0", "executions/e1/a/x", "top.txt"]
    for n, key in enumerate(keys):
        service.put(key, f"bytes {n}".encode(), {"adapter": f"a{n}", "lineage": [f"parent-{n}"]})
    # Written by another tool (no sidecar), and replaced under its sidecar (a new inode).
    with open(path_of(store, "executions/e1/r0/s0/foreign.bin"), "wb") as handle:
        handle.write(b"bytes from elsewhere")
    replacement = os.path.join(os.path.dirname(store.root), "replacement")
    with open(replacement, "wb") as handle:
        handle.write(b"bytes 0")  # a copy of its bytes: a copied tree
    os.replace(replacement, path_of(store, keys[0]))
    settled(*(os.path.join(store.root, "executions/e1", d) for d in ("", "r0/s0", "r1/s1", "r2/s0")))

    cases = [
        {"prefix": ""},
        {"prefix": "executions/e1/"},
        {"prefix": "executions/e1/r1/", "limit": 3},
        {"prefix": "executions/e1/r", "limit": 7},
        {"prefix": "executions/e1/a"},
        {"prefix": "executions/e1/", "start_after": "executions/e1/a/x"},
        {"prefix": "executions/e1/", "start_after": "executions/e1/r1/s"},
        {"prefix": "executions/e1/", "start_after": "executions/e1/r1/s1/msg-004.md", "limit": 5},
        {"prefix": "executions/e1/", "start_after": "zzz"},
        {"prefix": "executions/e1/", "route_id": "r2"},
        {"prefix": "executions/e1/", "route_id": "r1", "stage": "s1", "extension": "md"},
        {"prefix": "executions/e1/", "extension": "json,bin", "limit": 9},
        {"prefix": "executions/e2/"},
        {"prefix": "top.txt/"},
    ]
    for params in cases:
        assert cached_page(store, service, **params) == reference_page(service, **params), params

    # Paging by cursor walks every object once, in order.
    seen, cursor = [], None
    while True:
        page = service.list_page("executions/e1/", limit=6, cursor=cursor)
        seen += [row["key"] for row in page["objects"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [row["key"] for row in service.list_page("executions/e1/", limit=1000,
                                                            include_metadata=False)["objects"]]


def test_objects_added_deleted_and_renamed_over_show_at_once(store):
    service = StorageService(store)
    for n in range(3):
        service.put(f"{PREFIX}msg-{n}", b"0123456789", {"adapter": "aaaa"})
    settled(path_of(store, PREFIX), *(path_of(store, f"{PREFIX}msg-{n}{SIDECAR_SUFFIX}") for n in range(3)))

    def rows() -> dict[str, tuple[int, str]]:
        page = service.list_page(PREFIX)
        return {row["key"][len(PREFIX):]: (row["size"], row["metadata"]["adapter"]) for row in page["objects"]}

    assert rows() == {f"msg-{n}": (10, "aaaa") for n in range(3)}
    assert rows() == {f"msg-{n}": (10, "aaaa") for n in range(3)}  # now from the caches
    assert store.primitives.directories.hits and store.primitives.rows.hits

    service.put(f"{PREFIX}msg-3", b"new", {"adapter": "dddd"})
    service.delete(f"{PREFIX}msg-0")
    assert rows() == {"msg-1": (10, "aaaa"), "msg-2": (10, "aaaa"), "msg-3": (3, "dddd")}

    # Another tool renames a same-sized object and sidecar over msg-1's.
    work = os.path.dirname(store.root)
    sidecar = path_of(store, f"{PREFIX}msg-1{SIDECAR_SUFFIX}")
    with open(sidecar, "rb") as handle:
        record = orjson.loads(handle.read())
    with open(os.path.join(work, "object"), "wb") as handle:
        handle.write(b"9876543210")
    inode = os.stat(os.path.join(work, "object")).st_ino
    with open(os.path.join(work, "sidecar"), "wb") as handle:
        handle.write(orjson.dumps({**record, INODE_FIELD: inode, "adapter": "bbbb"}))
    os.replace(os.path.join(work, "sidecar"), sidecar)
    os.replace(os.path.join(work, "object"), path_of(store, f"{PREFIX}msg-1"))
    assert rows()["msg-1"] == (10, "bbbb")
    # The object's bytes of the same size changed in place: its row keeps up too.
    with open(path_of(store, f"{PREFIX}msg-2"), "r+b") as handle:
        handle.write(b"0123456789abc")
    assert rows()["msg-2"] == (13, "aaaa")


def test_a_sidecar_changed_in_place_by_another_process_is_served_at_once_over_http(store):
    service = StorageService(store)
    keys = [f"{PREFIX}msg-{n}" for n in range(3)]
    for key in keys:
        service.put(key, b"{}", {"adapter": "aaaa"})
    sidecar = path_of(store, keys[1] + SIDECAR_SUFFIX)
    settled(path_of(store, PREFIX), *(path_of(store, key + SIDECAR_SUFFIX) for key in keys))
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_fs_sidecar_cache import edit_in_place
        from factflow_storage import create_storage_provider
        edit_in_place({sidecar!r}, b'"aaaa"', b'"cccc"')
        provider = create_storage_provider({store.uri!r})
        provider.write({PREFIX + "msg-9"!r}, b"from elsewhere", {{"adapter": "zzzz"}})
    """)
    with running_server(service) as url:
        def adapters() -> list[str]:
            query = f"prefix={PREFIX}&include_metadata=true"
            with urllib.request.urlopen(f"{url}/api/v1/storage/objects?{query}") as reply:
                return [row["metadata"]["adapter"] for row in orjson.loads(reply.read())["objects"]]

        def metadata(key: str) -> str:
            with urllib.request.urlopen(f"{url}/api/v1/storage/objects/{key}?view=metadata") as reply:
                return orjson.loads(reply.read())["adapter"]

        assert adapters() == ["aaaa"] * 3
        assert adapters() == ["aaaa"] * 3
        assert store.primitives.directories.hits and store.primitives.rows.hits  # served from the caches
        assert metadata(keys[1]) == "aaaa"
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        assert adapters() == ["aaaa", "cccc", "aaaa", "zzzz"]
        assert metadata(keys[1]) == "cccc"
        edit_in_place(sidecar, b'"cccc"', b'"dddd"')  # again, within the settle time of the first
        assert adapters() == ["aaaa", "dddd", "aaaa", "zzzz"]


def test_the_directory_cache_keeps_a_bounded_number_of_names(tmp_path):
    provider = create_storage_provider(f"file://{tmp_path / 'storage'}")
    getattr(provider, "primitives", provider).directories = cache = DirectoryCache(max_names=50, settle_ns=SETTLE_NS)
    service = StorageService(provider)
    for d in range(12):
        for n in range(10):
            service.put(f"d{d:02d}/msg-{n}", b"x")
    settled(*(str(tmp_path / "storage" / f"d{d:02d}") for d in range(12)))
    for d in range(12):
        assert len(service.list_page(f"d{d:02d}/")["objects"]) == 10
        assert cache.names <= 50
    assert 0 < len(cache) <= 5
    # A directory larger than the whole bound is read each time, never kept.
    for n in range(60):
        service.put(f"big/msg-{n:02d}", b"x")
    settled(str(tmp_path / "storage" / "big"))
    for _ in range(2):
        assert len(service.list_page("big/")["objects"]) == 60
    assert cache.names <= 50
    provider.close()


def test_rows_kept_are_bounded_and_each_page_gets_blobs_of_its_own(tmp_path):
    provider = create_storage_provider(f"file://{tmp_path / 'storage'}")
    fs = getattr(provider, "primitives", provider)
    fs.rows = cache = RowCache(max_bytes=20_000, settle_ns=SETTLE_NS)
    service = StorageService(provider)
    for n in range(100):
        service.put(f"d/msg-{n:03d}", b"x", {"lineage": [f"parent-{n}"], "adapter": "aaaa"})
    settled(str(tmp_path / "storage" / "d"), *(str(tmp_path / "storage" / "d" / f"msg-{n:03d}{SIDECAR_SUFFIX}")
                                                for n in range(100)))
    assert len(service.list_page("d/", limit=100)["objects"]) == 100
    assert 0 < cache.bytes <= 20_000 and 0 < len(cache) < 100
    first = service.list_page("d/", limit=10)
    second = service.list_page("d/", limit=10)  # a page that fits: kept whole
    assert cache.hits and second == first
    second["objects"][-1]["metadata"]["lineage"].append("changed by a caller")
    second["objects"][-1]["metadata"]["adapter"] = "changed by a caller"
    assert service.list_page("d/", limit=10) == first
    provider.close()

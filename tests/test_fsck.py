"""``factflow storage fsck`` on the filesystem: each kind of damage found and repaired, a
healthy store untouched, live writes spared; the same through the API and ``--api``."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from factflow_storage.providers.filesystem import FilesystemProvider
from factflow_storage.faults import FAULT_ENV
from factflow_storage.providers.fs_write import FAULT_POINTS
from factflow_storage.registry import parse_storage_uri
from factflow_storage.service import StorageService
from factflow_storage.store import Store
from server_fixture import running_server


def factflow(root: Path, *args: str, env: dict | None = None, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "factflow_storage", "--storage", f"file://{root}", *args],
                          input=stdin, capture_output=True, timeout=60, env={**os.environ, **(env or {})})


def fsck_json(root: Path, *args: str) -> tuple[int, dict]:
    result = factflow(root, "storage", "fsck", *args, "--output", "json")
    assert "Traceback" not in result.stderr.decode()
    return result.returncode, orjson.loads(result.stdout)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def age_temps(root: Path, seconds: float = 10.0) -> None:
    """Make the temp files killed writers left look ``seconds`` old (fsck spares younger ones)."""
    past = time.time() - seconds
    for path in root.rglob(".*.tmp.meta.json"):
        os.utime(path, (past, past))


def readable(store: FilesystemProvider, key: str) -> bytes:
    with store.open(key) as stream:
        data = stream.read()
        assert stream.metadata["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    return data


@pytest.fixture
def store(tmp_path):
    return Store(FilesystemProvider(parse_storage_uri(f"file://{tmp_path / 'root'}")))


def test_a_healthy_store_is_left_untouched(store, tmp_path):
    root = tmp_path / "root"
    for n in range(5):
        store.write(f"executions/e/r/s/m{n}", b"x" * n, {"n": n})
    store.write_execution("e", {"status": "running"})
    before = tree(root)
    code, report = fsck_json(root, "--repair", "--grace", "0")
    assert (code, report["found"], report["unrepaired"]) == (0, {}, 0)
    assert tree(root) == before


def test_each_kind_of_damage_is_found_then_repaired(store, tmp_path):
    root = tmp_path / "root"
    keys = {kind: f"executions/e/r/s/{kind}" for kind in
            ("orphan_temp", "interrupted_write", "orphan_sidecar", "missing_metadata", "metadata_mismatch",
             "damaged_metadata")}
    for key in keys.values():
        store.write(key, b"old bytes", {"keep": "me"})
    new = tmp_path / "new.bin"
    new.write_bytes(b"new bytes" * 100)
    for kind, point in (("orphan_temp", "data-synced"), ("interrupted_write", "sidecar-renamed")):
        killed = factflow(root, "storage", "put", keys[kind], "--file", str(new), env={FAULT_ENV: point})
        assert killed.returncode == -signal.SIGKILL
    os.unlink(root / keys["orphan_sidecar"])
    os.unlink(root / (keys["missing_metadata"] + ".meta.json"))
    replacement = root / "executions/e/r/s/replacement"
    replacement.write_bytes(b"changed by another tool")
    os.replace(replacement, root / keys["metadata_mismatch"])  # a new inode, other bytes
    (root / (keys["damaged_metadata"] + ".meta.json")).write_bytes(b"not json")
    age_temps(root)

    code, report = fsck_json(root, "--grace", "0")
    assert code == 1
    assert report["found"] == {"damaged_metadata": 1, "interrupted_write": 1, "metadata_mismatch": 1,
                               "missing_metadata": 1, "orphan_sidecar": 1, "orphan_temp": 2}
    assert report["repaired"] == {} and report["unrepaired"] == 7

    code, report = fsck_json(root, "--repair", "--grace", "0")
    assert code == 0, report
    assert report["unrepaired"] == 0
    assert report["bytes_reclaimed"] == 2 * len(new.read_bytes())
    assert not [p for p in root.rglob(".*.tmp.meta.json")]
    assert fsck_json(root, "--grace", "0") == (0, fsck_json(root, "--grace", "0")[1])
    assert fsck_json(root, "--grace", "0")[1]["found"] == {}
    for kind, key in keys.items():
        if kind == "orphan_sidecar":
            assert not store.exists(key)
            continue
        data = readable(store, key)
        if kind == "metadata_mismatch":
            assert data == b"changed by another tool"
            assert store.metadata(key)["keep"] == "me"  # rolled forward, the writer's fields kept
        elif kind in ("orphan_temp", "interrupted_write"):
            assert data == b"old bytes"  # the killed write was never acknowledged


def test_young_and_live_temp_files_are_spared(store, tmp_path):
    root = tmp_path / "root"
    store.write("a/k", b"v1")
    killed = factflow(root, "storage", "put", "a/k", "--file", "/dev/null", env={FAULT_ENV: "data-written"})
    assert killed.returncode == -signal.SIGKILL
    # Within the default grace period a temp file may belong to a slow writer.
    code, report = fsck_json(root, "--repair")
    assert (code, report["found"]) == (0, {})
    assert list(root.rglob(".*.tmp.meta.json"))
    age_temps(root)
    # A live writer holds its temp file's lock: never removed, whatever the grace.
    live = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        "from factflow_storage.providers import fs_write\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "name, held = fs_write.write_temp(fd, [b'live bytes'], fsync=False)\n"
        "print(name, flush=True)\n"
        "time.sleep(60)\n"), str(root / "a")], stdout=subprocess.PIPE, text=True)
    try:
        live_name = live.stdout.readline().strip()
        age_temps(root)  # old enough: only its writer's lock protects it now
        code, report = fsck_json(root, "--repair", "--grace", "0")
        assert report["found"] == {"orphan_temp": 1} and code == 0
        assert (root / "a" / live_name).exists()
    finally:
        live.kill()
        live.wait()


def test_twenty_killed_writes_are_repaired(store, tmp_path, capsys):
    root = tmp_path / "root"
    source = tmp_path / "src.bin"
    source.write_bytes(os.urandom(200_000))
    keys = [f"executions/e/r/s/k{n}" for n in range(5)]
    for key in keys:
        store.write(key, b"first")
    for n in range(20):
        point = FAULT_POINTS[n % len(FAULT_POINTS)]
        killed = factflow(root, "storage", "put", keys[n % 5], "--file", str(source), env={FAULT_ENV: point})
        assert killed.returncode == -signal.SIGKILL
        for key in keys:
            assert readable(store, key) in (b"first", source.read_bytes())
    age_temps(root)
    code, report = fsck_json(root, "--repair", "--grace", "0")
    assert code == 0 and report["unrepaired"] == 0
    with capsys.disabled():
        print(f"\nfsck after 20 killed writes: found {report['found']}, repaired {report['repaired']}, "
              f"{report['bytes_reclaimed']} bytes reclaimed")
    assert report["found"]["orphan_temp"] >= 10
    assert fsck_json(root, "--grace", "0")[1]["found"] == {}
    for key in keys:
        assert readable(store, key) in (b"first", source.read_bytes())


def test_api_and_api_mode_report_the_same(store, tmp_path):
    root = tmp_path / "root"
    store.write("a/k", b"v1")
    os.unlink(root / "a/k.meta.json")
    service = StorageService(store)
    direct = factflow(root, "storage", "fsck", "a/")
    assert direct.returncode == 1 and b"missing_metadata a/k" in direct.stdout
    with running_server(service) as url:
        remote = subprocess.run([sys.executable, "-m", "factflow_storage", "--api", url, "storage", "fsck", "a/"],
                                capture_output=True, timeout=60)
        assert (remote.returncode, remote.stdout) == (direct.returncode, direct.stdout)
        bad = subprocess.run([sys.executable, "-m", "factflow_storage", "--api", url, "storage", "fsck", "/abs"],
                             capture_output=True, timeout=60)
        assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1
        repaired = subprocess.run([sys.executable, "-m", "factflow_storage", "--api", url, "--output", "json",
                                   "storage", "fsck", "--repair"], capture_output=True, timeout=60)
        assert repaired.returncode == 0
        assert orjson.loads(repaired.stdout)["repaired"] == {"missing_metadata": 1}
    assert store.metadata("a/k")["checksum"] == "sha256:" + hashlib.sha256(b"v1").hexdigest()


def _busy_writer(root: str, writer: int, started, stop) -> None:
    store = FilesystemProvider(parse_storage_uri(f"file://{root}"))
    n = 0
    while not stop.is_set():
        if n == 3:
            started.release()
        store.write(f"busy/k{n % 3}", f"{writer}:{n}".encode() * 5000, {"writer": writer})
        store.put_record(f"busy/{writer}", b"record")
        n += 1


def test_repair_beside_live_writers_removes_nothing_they_need(store, tmp_path):
    import multiprocessing

    root = tmp_path / "root"
    ctx = multiprocessing.get_context("fork")
    started, stop = ctx.Semaphore(0), ctx.Event()
    writers = [ctx.Process(target=_busy_writer, args=(str(root), w, started, stop)) for w in range(3)]
    for proc in writers:
        proc.start()
    reports = []
    try:
        for _ in writers:  # each writer is well into its writes
            assert started.acquire(timeout=60)
        # A count, not a time: the writers go on until every repair is done.
        while len(reports) < 5:
            reports.append(StorageService(store).fsck("", repair=True, grace=0))
    finally:
        stop.set()
        for proc in writers:
            proc.join(timeout=30)
    assert [proc.exitcode for proc in writers] == [0, 0, 0]  # no write lost its temp file
    assert all(report["found"] == {} for report in reports), [r["found"] for r in reports if r["found"]]
    for n in range(3):
        readable(store, f"busy/k{n}")


def test_the_fsck_route_refuses_a_bad_body_in_the_error_shape(store):
    from server_fixture import http_request

    with running_server(StorageService(store)) as url:
        for body in (b'{"repair": "yes"}', b'{"grace_seconds": -1}', b'{"other": 1}', b'[1]', b'{"prefix": "/x"}'):
            reply = http_request(url, "POST", "/api/v1/storage/fsck", body=body,
                                 headers={"Content-Type": "application/json"})
            assert reply.status == 400, (body, reply.status, reply.body)
            assert set(reply.json()) == {"detail", "error_code", "timestamp"}
        reply = http_request(url, "POST", "/api/v1/storage/fsck")
        assert reply.status == 200 and reply.json()["found"] == {}


@pytest.mark.parametrize("grace", [1e12, 2.7e29, float(10**400 // 10**300)])
def test_a_grace_longer_than_any_clock_touches_nothing_and_does_not_fail(storage, provider, grace):
    # A grace past the epoch's range once made the S3 walk fail (a 500 over HTTP): any grace
    # beyond what a clock can express means "everything is young", so nothing is touched.
    provider.write("executions/e/r/s/k.json", b"{}")
    report = StorageService(provider).fsck(repair=True, grace=grace)
    assert report["found"] == {} and report["unrepaired"] == 0
    assert provider.read("executions/e/r/s/k.json") == b"{}"

"""S3 writes under concurrency and SIGKILL, fsck of what killed writers leave, and the
adapter that holds minio-py's private API (against the suite's real S3 server)."""

from __future__ import annotations

import hashlib
import inspect
import multiprocessing
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from factflow_storage import create_storage_provider
from factflow_storage.errors import ConfigError
from factflow_storage.providers import s3_client, s3_transfer
from factflow_storage.providers import s3_metadata as meta

pytestmark = pytest.mark.s3

KEY = "executions/e1/r/s/shared.bin"
WRITERS = 6
ROUNDS = 10
SMALL_PART = 5 * 1024 * 1024  # S3's smallest part: streams past it go up in parts


def _payload(writer: int, round_: int) -> tuple[bytes, dict]:
    # Writers 0-1 stream past the part size (multipart); odd writers spill their metadata
    # to a companion record (> 2 KiB); writer 4 is small with inline metadata.
    size = SMALL_PART + 1000 + writer if writer < 2 else 1000 + writer * 100 + round_
    seed = hashlib.sha256(f"{writer}/{round_}".encode()).digest()
    data = (seed * (size // 32 + 1))[:size]
    metadata = {"writer": writer, "round": round_}
    if writer % 2 or writer == 2:
        metadata["pad"] = "p" * 3000
    return data, metadata


def _writer(uri: str, options: dict, writer: int, barrier, rounds: int) -> None:
    import io

    s3_transfer.PART_SIZE = SMALL_PART
    provider = create_storage_provider(uri, options)
    for round_ in range(rounds):
        data, metadata = _payload(writer, round_)
        barrier.wait()
        provider.write(KEY, io.BytesIO(data) if writer < 2 else data, metadata)
        barrier.wait()
        barrier.wait()


def test_concurrent_writers_of_one_key_leave_one_whole_version(s3_server):
    uri = f"minio://{s3_server.new_bucket()}"
    options = s3_server.options()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WRITERS + 1)
    procs = [ctx.Process(target=_writer, args=(uri, options, w, barrier, ROUNDS)) for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    provider = create_storage_provider(uri, options)
    unreadable = []
    try:
        for round_ in range(ROUNDS):
            barrier.wait(timeout=120)
            barrier.wait(timeout=120)
            written = [_payload(w, round_)[0] for w in range(WRITERS)]
            try:
                with provider.open(KEY) as stream:
                    data, blob = stream.read(), stream.metadata
                assert data in written
                assert blob["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
                assert blob["writer"] == written.index(data) and blob["round"] == round_
            except Exception as err:  # counted, so the failure says how many rounds broke
                unreadable.append(f"round {round_}: {err}")
            barrier.wait(timeout=120)
    finally:
        for proc in procs:
            proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * WRITERS
    assert unreadable == [], f"{len(unreadable)} of {ROUNDS} rounds unreadable: {unreadable}"


def _cli(storage_env: dict, *args: str, env: dict | None = None, strace: list[str] | None = None):
    return subprocess.run((strace or []) + [sys.executable, "-m", "factflow_storage", *args],
                          capture_output=True, timeout=120, env={**storage_env, **(env or {})})


def test_a_killed_multipart_put_is_aborted_by_fsck_and_the_old_version_stays(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(s3_server.env(), FACTFLOW_STORAGE_URI=f"minio://{bucket}")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(s3_transfer.PART_SIZE + 4096))
    old = tmp_path / "old.bin"
    old.write_bytes(b"the previous version")
    assert _cli(env, "storage", "put", KEY, "--file", str(old)).returncode == 0
    # Killed with its parts stored and the upload not completed (the fault hook, not a
    # race with a kill: on a slow machine the upload could complete first).
    from factflow_storage.faults import FAULT_ENV

    killed = _cli(env, "storage", "put", KEY, "--file", str(source), env={FAULT_ENV: "parts-sent"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    client = s3_server.client()
    assert list(s3_client.list_incomplete_uploads(client, bucket, ""))
    got = _cli(env, "storage", "get", KEY)
    assert got.returncode == 0 and got.stdout == b"the previous version"

    young = _cli(env, "--output", "json", "storage", "fsck")
    assert orjson.loads(young.stdout)["found"] == {}  # inside the grace period: a live upload
    found = _cli(env, "--output", "json", "storage", "fsck", "--grace", "0")
    assert found.returncode == 1 and orjson.loads(found.stdout)["found"] == {"incomplete_upload": 1}
    fixed = _cli(env, "--output", "json", "storage", "fsck", "--grace", "0", "--repair")
    report = orjson.loads(fixed.stdout)
    assert fixed.returncode == 0 and report["repaired"] == {"incomplete_upload": 1}
    assert list(s3_client.list_incomplete_uploads(client, bucket, "")) == []
    assert _cli(env, "--output", "json", "storage", "fsck", "--grace", "0").returncode == 0


def test_fsck_removes_only_records_no_object_names(s3_server):
    uri = f"minio://{s3_server.new_bucket()}"
    provider = create_storage_provider(uri, s3_server.options())
    big = {"pad": "p" * 3000}
    provider.write("a/k", b"1", big)
    provider.write("a/k", b"2", {**big, "v": 2})
    provider.write("a/gone", b"x", big)
    current = provider._current_write_id("a/gone", provider._name("a/gone"))
    provider._client.remove_object(bucket_name=provider.bucket, object_name="a/gone")  # a delete that died
    # A record a killed small put left before its object appeared.
    provider.put_record(meta.companion_name("a/k", meta.new_write_id()),
                        orjson.dumps({"key": "a/k", "checksum": "sha256:00"}))
    assert {f.kind for f in provider.fsck(grace=3600)} == set()
    findings = list(provider.fsck(repair=True, grace=0))
    assert sorted(f.kind for f in findings) == ["unreferenced_record"] * 3
    assert all(f.repaired for f in findings)
    assert provider.get_record(meta.companion_name("a/gone", current)) is None
    assert provider.metadata("a/k")["v"] == 2 and provider.read("a/k") == b"2"
    assert [r for r in provider.list_records("metadata/")] == \
        [meta.companion_name("a/k", provider._current_write_id("a/k", provider._name("a/k")))]
    assert list(provider.fsck(repair=True, grace=0)) == []


def test_the_adapter_accepts_this_minio_and_refuses_an_incompatible_one(monkeypatch):
    s3_client._checked = False
    s3_client.check_compatible()
    from minio import Minio

    def renamed(self, *, bucket_name, object_name, data, upload_id, part_number):  # minio 8's shape
        raise AssertionError("never called")

    monkeypatch.setattr(s3_client, "_checked", False)
    monkeypatch.setattr(Minio, "_upload_part", renamed)
    with pytest.raises(ConfigError, match="_upload_part lost headers"):
        s3_client.check_compatible()
    monkeypatch.delattr(Minio, "_execute")
    with pytest.raises(ConfigError, match="not supported"):
        create_storage_provider("minio://bucket", {"endpoint": "127.0.0.1:9", "access_key": "a",
                                                   "secret_key": "b", "secure": False})


def test_no_module_but_the_adapter_touches_minio_private_api():
    package = Path(inspect.getfile(s3_client)).parent.parent
    private = re.compile(r"\._(execute|create_multipart_upload|upload_part|complete_multipart_upload|"
                         r"abort_multipart_upload|list_multipart_uploads)\b|minio\.datatypes|\b_code\b|\"_code\"")
    offenders = [str(path.relative_to(package)) for path in package.rglob("*.py")
                 if path.name != "s3_client.py" and private.search(path.read_text())]
    assert offenders == []


_SMALL_POINTS = ("companion-stored", "object-stored", "companions-dropped")
_MULTIPART_POINTS = ("upload-created", "parts-sent", "companion-stored", "upload-completed", "companions-dropped")


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "big.bin"
    path.write_bytes(os.urandom(s3_transfer.PART_SIZE + 1000))
    return path


@pytest.mark.parametrize("multipart,point", [(False, p) for p in _SMALL_POINTS] + [(True, p) for p in _MULTIPART_POINTS])
def test_a_writer_killed_at_any_step_leaves_old_or_new_and_fsck_cleans_up(s3_server, tmp_path, big_source,
                                                                          multipart, point):
    from factflow_storage.faults import FAULT_ENV

    bucket = s3_server.new_bucket()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(s3_server.env(), FACTFLOW_STORAGE_URI=f"minio://{bucket}")
    old = tmp_path / "old.bin"
    old.write_bytes(b"old version")
    big = '{"pad": "%s"}' % ("p" * 3000)  # spilled to a companion record
    assert _cli(env, "storage", "put", KEY, "--file", str(old), "--metadata", big).returncode == 0
    new = big_source if multipart else tmp_path / "new.bin"
    if not multipart:
        new.write_bytes(b"new version " * 100)
    killed = _cli(env, "storage", "put", KEY, "--file", str(new), "--metadata", big, env={FAULT_ENV: point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    got = _cli(env, "storage", "get", KEY)
    assert got.returncode == 0, got.stderr
    assert got.stdout in (old.read_bytes(), new.read_bytes())
    blob = orjson.loads(_cli(env, "--output", "json", "storage", "metadata", KEY).stdout)
    assert blob["checksum"] == "sha256:" + hashlib.sha256(got.stdout).hexdigest()
    fixed = _cli(env, "--output", "json", "storage", "fsck", "--repair", "--grace", "0")
    assert fixed.returncode == 0, fixed.stdout
    assert _cli(env, "storage", "get", KEY).stdout == got.stdout
    assert orjson.loads(_cli(env, "--output", "json", "storage", "fsck", "--grace", "0").stdout)["found"] == {}
    assert list(s3_client.list_incomplete_uploads(s3_server.client(), bucket, "")) == []


def test_a_blob_past_the_limit_is_refused_before_anything_is_sent(s3_server):
    from factflow_storage.errors import TooLarge
    from factflow_storage.metadata import MAX_METADATA_BYTES

    uri = f"minio://{s3_server.new_bucket()}"
    provider = create_storage_provider(uri, s3_server.options())
    with pytest.raises(TooLarge):
        provider.write("a/b", b"x", {"pad": "x" * MAX_METADATA_BYTES})
    assert not provider.exists("a/b")
    assert list(provider.list_records("")) == []

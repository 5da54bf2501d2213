"""Bytes changed in place by another tool (same inode, size and times, as ``rsync
--inplace`` or a restore leaves them) are never blessed silently: ``fsck --verify
--repair`` quarantines the object, every read refuses it in one line naming fsck while
its metadata still answers, and only ``--accept-changed`` keeps the new bytes, the old
checksum as ``stale_checksum``. Real files on a filesystem store; the CLI in-process and
as a subprocess, HTTP through a real server; S3 (real radosgw) refuses accepting."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tracemalloc

import orjson
import pytest
from click.testing import CliRunner

from factflow_storage.cli.main import cli
from factflow_storage.errors import BadRequest, Quarantined
from factflow_storage.service import StorageService
from retention_support import write_execution
from server_fixture import http_request, running_server
from waiting import eventually

KEY = "executions/P/route/parse/m0001.txt"
OTHER = "executions/P/route/parse/m0000.txt"


def change_in_place(provider, key: str, data: bytes) -> None:
    path = os.path.join(provider.root, key)
    before = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def run(storage, *args: str):
    env = {name: None for name in os.environ if name.startswith("FACTFLOW_")}
    env.update(storage.env, FACTFLOW_STORAGE_URI=storage.uri)
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def refused(stderr: str, key: str = KEY) -> None:
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert f"object {key!r} is quarantined" in stderr, stderr
    assert f"'factflow storage fsck --verify --accept-changed {key}'" in stderr, stderr


@pytest.fixture
def changed(file_storage):
    """A filesystem store with one object whose bytes another tool changed in place."""
    provider = file_storage.open()
    write_execution(provider, "P", count=2)
    old = provider.read(KEY)
    change_in_place(provider, KEY, b"TEXT 1")
    yield file_storage, provider, old
    provider.close()


def test_repair_quarantines_and_every_read_refuses_it_in_one_line(changed, tmp_path):
    storage, provider, old = changed
    repaired = run(storage, "storage", "fsck", "--verify", "--repair", "-o", "json")
    assert repaired.exit_code == 0, repaired.stdout
    report = orjson.loads(repaired.stdout)
    [finding] = [f for f in report["findings"] if f["kind"] == "changed_bytes"]
    assert finding["path"] == KEY and finding["repaired"] and "quarantined" in finding["detail"], finding
    assert report["repaired"]["changed_bytes"] == 1 and report["unrepaired"] == 0, report

    # The provider, and the CLI through click and through the option-less fast path.
    with pytest.raises(Quarantined):
        provider.read(KEY)
    got = run(storage, "storage", "get", KEY)
    assert got.exit_code == 1 and got.stdout == ""
    refused(got.stderr)
    env = {name: value for name, value in os.environ.items() if not name.startswith("FACTFLOW_")}
    fast = subprocess.run([sys.executable, "-m", "factflow_storage", "storage", "get", KEY],
                          env={**env, "FACTFLOW_STORAGE_URI": storage.uri, "PYTHONPATH": os.environ.get(
                              "PYTHONPATH", "")}, capture_output=True, text=True, timeout=60)
    assert fast.returncode == 1 and fast.stdout == "", fast
    refused(fast.stderr)

    # The metadata still answers, quarantine and all, so an operator can inspect it.
    blob = orjson.loads(run(storage, "storage", "metadata", KEY, "-o", "json").stdout)
    assert blob["checksum"] == sha(old)
    assert blob["quarantined"]["found_checksum"] == sha(b"TEXT 1"), blob
    assert blob["quarantined"]["expected_checksum"] == sha(old), blob
    assert provider.read(OTHER) == b"text 0"  # its neighbours are untouched

    # A download of the execution names it among the failures and fetches the rest.
    fetched = run(storage, "storage", "download", "P", "-d", str(tmp_path / "out"), "-q")
    assert fetched.exit_code == 1
    assert "quarantined" in fetched.output, fetched.output
    parse = tmp_path / "out" / "executions" / "P" / "route" / "parse"
    assert (parse / "m0000.txt").read_bytes() == b"text 0"
    assert not (parse / "m0001.txt").exists()

    # Verify without repair still reports it, and fails, until it is accepted.
    again = run(storage, "storage", "fsck", "--verify")
    assert again.exit_code == 1 and "quarantined" in again.stdout, again.stdout
    # A second repair changes nothing and counts it repaired (it is set aside).
    assert run(storage, "storage", "fsck", "--verify", "--repair").exit_code == 0


def test_reads_over_http_answer_409_and_the_metadata_still_answers(changed):
    storage, provider, old = changed
    service = StorageService(provider)
    with running_server(service) as url:
        reply = http_request(url, "POST", "/api/v1/storage/fsck", headers={"Content-Type": "application/json"},
                             body=orjson.dumps({"verify": True, "repair": True}))
        assert reply.status == 200 and reply.json()["repaired"] == {"changed_bytes": 1}, reply.body
        got = http_request(url, "GET", f"/api/v1/storage/objects/{KEY}")
        assert got.status == 409, got
        error = got.json()
        assert set(error) == {"detail", "error_code", "timestamp"} and error["error_code"] == "quarantined", error
        assert "fsck --verify --accept-changed" in error["detail"] and "\n" not in error["detail"], error
        ranged = http_request(url, "GET", f"/api/v1/storage/objects/{KEY}", headers={"Range": "bytes=0-1"})
        assert ranged.status == 409, ranged
        meta = http_request(url, "GET", f"/api/v1/storage/objects/{KEY}/metadata")
        assert meta.status == 200 and meta.json()["quarantined"]["found_checksum"] == sha(b"TEXT 1"), meta.body
        # Through the API client too: the CLI's one line, exit 1.
        result = CliRunner().invoke(cli, ["--api", url, "storage", "get", KEY], env={"FACTFLOW_API_URL": None},
                                    catch_exceptions=False)
        assert result.exit_code == 1 and "is quarantined" in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr

        accepted = CliRunner().invoke(cli, ["--api", url, "storage", "fsck", "--accept-changed", KEY, "-o", "json"],
                                      env={"FACTFLOW_API_URL": None}, catch_exceptions=False)
        assert accepted.exit_code == 0, (accepted.stdout, accepted.stderr)
        assert orjson.loads(accepted.stdout)["repaired"] == {"changed_bytes": 1}, accepted.stdout
        served = http_request(url, "GET", f"/api/v1/storage/objects/{KEY}")
        assert served.status == 200 and served.body == b"TEXT 1", served
        bad = http_request(url, "POST", "/api/v1/storage/fsck", headers={"Content-Type": "application/json"},
                           body=orjson.dumps({"accept_changed": "yes"}))
        assert bad.status == 400 and bad.json()["error_code"] == "bad_request", bad.body


def test_accept_changed_rolls_forward_and_keeps_the_old_checksum(changed):
    storage, provider, old = changed
    assert run(storage, "storage", "fsck", "--verify", "--repair").exit_code == 0
    accepted = run(storage, "storage", "fsck", "--verify", "--accept-changed", KEY, "-o", "json")
    assert accepted.exit_code == 0, accepted.stdout
    [finding] = orjson.loads(accepted.stdout)["findings"]
    assert finding["kind"] == "changed_bytes" and finding["repaired"] and finding["path"] == KEY, finding
    assert "accepted" in finding["detail"], finding

    got = run(storage, "storage", "get", KEY)
    assert got.exit_code == 0 and got.stdout_bytes == b"TEXT 1", got.stderr
    blob = provider.metadata(KEY)
    assert blob["checksum"] == sha(b"TEXT 1") and blob["stale_checksum"] == sha(old), blob
    assert "quarantined" not in blob, blob
    clean = run(storage, "storage", "fsck", "--verify", "-o", "json")
    assert clean.exit_code == 0 and orjson.loads(clean.stdout)["found"] == {}, clean.stdout


def test_accept_changed_without_quarantine_and_only_under_its_prefix(file_storage):
    provider = file_storage.open()
    write_execution(provider, "P", count=2)
    change_in_place(provider, KEY, b"TEXT 1")
    change_in_place(provider, OTHER, b"TEXT 0")
    accepted = run(file_storage, "storage", "fsck", "--accept-changed", KEY, "-o", "json")
    assert accepted.exit_code == 0, accepted.stdout
    assert provider.metadata(KEY)["checksum"] == sha(b"TEXT 1")
    assert provider.metadata(OTHER)["checksum"] == sha(b"text 0")  # outside the prefix: as it was
    assert provider.read(OTHER) == b"TEXT 0"  # reported, not quarantined, without --repair
    left = run(file_storage, "storage", "fsck", "--verify", "-o", "json")
    assert left.exit_code == 1 and orjson.loads(left.stdout)["found"] == {"changed_bytes": 1}, left.stdout


def test_a_new_write_ends_the_quarantine_and_copied_metadata_does_not_carry_it(changed):
    storage, provider, old = changed
    assert run(storage, "storage", "fsck", "--verify", "--repair").exit_code == 0
    blob = provider.metadata(KEY)
    provider.write(KEY, b"fresh", {name: value for name, value in blob.items() if name != "checksum"})
    assert provider.read(KEY) == b"fresh"
    assert "quarantined" not in provider.metadata(KEY)
    assert run(storage, "storage", "fsck", "--verify").exit_code == 0


def test_quarantine_leaves_alone_an_object_replaced_after_it_was_read(changed):
    """A write between the read and the mark: the new version is not set aside."""
    storage, provider, old = changed
    stream, inode = provider.open_version(KEY)
    with stream:
        found = sha(stream.read())
    provider.write(KEY, old)  # the same bytes the stale checksum describes, as a new file
    assert not provider.settle_changed(KEY, inode=inode, stated=sha(old), found=found, accept=False)
    assert provider.read(KEY) == old and "quarantined" not in provider.metadata(KEY)


def test_verify_streams_a_large_object(file_storage):
    """Verifying a 64 MiB object holds about one chunk of it in memory, not the whole."""
    provider = file_storage.open()
    size = 64 * 2**20
    provider.write("big/blob.bin", io.BytesIO(b"\0" * size))
    change_in_place(provider, "big/blob.bin", b"\1")
    tracemalloc.start()
    try:
        report = StorageService(provider).fsck("big/", verify=True, repair=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report["repaired"] == {"changed_bytes": 1}, report
    assert peak < size // 4, peak  # a whole-object read would hold 64 MiB
    with pytest.raises(Quarantined):
        provider.read("big/blob.bin")


def test_s3_refuses_accepting_and_repair_leaves_reads_alone(s3):
    s3.write("a/b.txt", b"hello")
    service = StorageService(s3)
    with pytest.raises(BadRequest, match="filesystem"):
        service.fsck("a/", accept_changed=True)
    s3._client.put_object(bucket_name=s3.bucket, object_name="a/b.txt", data=io.BytesIO(b"HELLO"), length=5)
    report = service.fsck("a/", verify=True, repair=True)
    assert "changed_bytes" not in report["found"], report  # the ETag already told: nothing claimed
    assert s3.read("a/b.txt") == b"HELLO"


def test_bytes_restored_under_quarantine_are_released_by_repair(changed):
    storage, provider, old = changed
    assert run(storage, "storage", "fsck", "--verify", "--repair").exit_code == 0
    change_in_place(provider, KEY, old)  # the backup put back
    seen = run(storage, "storage", "fsck", "--verify", "-o", "json")
    assert seen.exit_code == 1 and orjson.loads(seen.stdout)["found"] == {"restored_bytes": 1}, seen.stdout
    with pytest.raises(Quarantined):
        provider.read(KEY)  # still set aside until repair says so
    released = run(storage, "storage", "fsck", "--verify", "--repair", "-o", "json")
    assert released.exit_code == 0 and orjson.loads(released.stdout)["repaired"] == {"restored_bytes": 1}
    assert provider.read(KEY) == old
    blob = provider.metadata(KEY)
    assert blob["checksum"] == sha(old) and "quarantined" not in blob and "stale_checksum" not in blob, blob
    assert run(storage, "storage", "fsck", "--verify").exit_code == 0


def test_an_archive_holding_a_quarantined_object_fails_naming_it(changed):
    storage, provider, old = changed
    service = StorageService(provider)
    assert service.fsck(verify=True, repair=True)["repaired"] == {"changed_bytes": 1}
    with running_server(service) as url:
        prepared = http_request(url, "POST", "/api/v1/content/archive/prepare",
                                headers={"Content-Type": "application/json"}, body=orjson.dumps({"execution_id": "P"}))
        assert prepared.status == 200, prepared.body
        job = prepared.json()["job_id"]

        def finished():
            status = http_request(url, "GET", f"/api/v1/content/archive/{job}/status").json()
            return status if status["status"] != "preparing" else None

        status = eventually(finished, "the archive job to finish")
        assert status["status"] == "failed" and "is quarantined" in status["error"], status

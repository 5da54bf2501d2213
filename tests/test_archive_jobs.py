"""Archive jobs over HTTP, on every storage kind: both request forms, the status shape,
the zip and its manifest, a second replica over the same storage, cancel, expiry, errors."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from factflow_storage.archive.jobs import STALE_ERROR, JobStore, record_name
from factflow_storage.zipformat.layout import sidecar_bytes
from factflow_storage.metadata import format_time
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server
from waiting import eventually

ARCHIVE = "/api/v1/content/archive"
STATUS_KEYS = {"job_id", "status", "total", "processed", "filename", "file_size", "bytes_packed",
               "progress", "error"}


def populate(service: StorageService, execution_id: str = "E1") -> dict[str, bytes]:
    objects = {}
    for n in range(12):
        route, stage = ("fetch", "html") if n % 3 == 0 else ("parse", "md" if n % 2 else "json")
        key = f"executions/{execution_id}/{route}/{stage}/m{n:03d}.txt"
        objects[key] = f"object {n} ".encode() * (n + 1)
    objects[f"executions/{execution_id}/fetch/html/big.bin"] = bytes(range(256)) * 20_000
    service.set_execution_status(execution_id, "running")
    for key, data in objects.items():
        service.put(key, data, {"note": key[-8:]})
    service.set_execution_status(execution_id, "completed")
    return objects


def call(url: str, method: str, path: str, body=None):
    reply = http_request(url, method, path, body=None if body is None else orjson.dumps(body),
                         headers={"Content-Type": "application/json"} if body is not None else None)
    return reply


def wait_ready(url: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        reply = call(url, "GET", f"{ARCHIVE}/{job_id}/status")
        assert reply.status == 200, reply.body
        status = reply.json()
        if status["status"] != "preparing" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def archive_members(data: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture
def service(storage):
    provider = storage.open()
    yield StorageService(provider)
    provider.close()


def test_prepare_poll_download_delete(service):
    objects = populate(service)
    with running_server(service) as url:
        reply = call(url, "POST", f"{ARCHIVE}/prepare", {"execution_id": "E1"})
        assert reply.status == 200, reply.body
        job = reply.json()
        assert STATUS_KEYS <= set(job) and job["status"] in ("preparing", "ready")
        assert job["filename"] == "E1.zip"

        status = wait_ready(url, job["job_id"])
        assert set(status) >= STATUS_KEYS
        assert status["status"] == "ready" and status["error"] is None
        assert (status["total"], status["processed"], status["progress"]) == (13, 13, 1.0)
        assert status["bytes_packed"] == sum(map(len, objects.values()))

        reply = call(url, "GET", f"{ARCHIVE}/{job['job_id']}/download")
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/zip"
        assert int(reply.headers["content-length"]) == len(reply.body) == status["file_size"]
        members = archive_members(reply.body)
        manifest = orjson.loads(members.pop("_factflow/manifest.json"))
        assert {k: v for k, v in members.items() if not k.endswith(".meta.json")} == objects
        for key in objects:
            assert members[key + ".meta.json"] == sidecar_bytes(service.metadata(key))
        assert manifest["execution_id"] == "E1" and manifest["count"] == 13
        assert {row["key"]: (row["size"], row["checksum"]) for row in manifest["objects"]} == {
            key: (len(data), "sha256:" + hashlib.sha256(data).hexdigest()) for key, data in objects.items()}

        reply = call(url, "DELETE", f"{ARCHIVE}/{job['job_id']}")
        assert reply.status == 200 and reply.json()["deleted"] is True
        assert call(url, "GET", f"{ARCHIVE}/{job['job_id']}/status").status == 404
        assert call(url, "GET", f"{ARCHIVE}/{job['job_id']}/download").status == 404
    assert list(service.provider.list_records("jobs/")) == []


@pytest.mark.parametrize("request_body, expected", [
    ({"execution_id": "E1", "routes": ["parse"], "stages": ["md"], "include_metadata": False},
     lambda key: "/parse/md/" in key),
    ({"execution_id": "E1", "domain": "storage", "stage": "html", "extension": "bin"},
     lambda key: key.endswith("big.bin")),
    ({"execution_id": "E1", "path": "parse/", "include_metadata": True}, lambda key: "/parse/" in key),
    ({"execution_id": "E1", "keys": ["executions/E1/fetch/html/m000.txt", "executions/E1/parse/md/m001.txt"]},
     lambda key: key.endswith(("m000.txt", "m001.txt"))),
], ids=["reference-form", "guide-form", "path", "keys"])
def test_both_request_forms_narrow_the_archive(service, request_body, expected):
    objects = populate(service)
    with running_server(service) as url:
        job = call(url, "POST", f"{ARCHIVE}/prepare", request_body).json()
        assert wait_ready(url, job["job_id"])["status"] == "ready"
        members = archive_members(call(url, "GET", f"{ARCHIVE}/{job['job_id']}/download").body)
    members.pop("_factflow/manifest.json")
    wanted = {key for key in objects if expected(key)}
    assert wanted and {name for name in members if not name.endswith(".meta.json")} == wanted
    sidecars = {name for name in members if name.endswith(".meta.json")}
    assert sidecars == (set() if request_body.get("include_metadata") is False else {k + ".meta.json" for k in wanted})


def test_a_second_replica_answers_for_a_job_the_first_prepared(storage):
    first, second = StorageService(storage.open()), StorageService(storage.open())
    objects = populate(first)
    with running_server(first) as url_a, running_server(second) as url_b:
        job = call(url_a, "POST", f"{ARCHIVE}/prepare", {"execution_id": "E1"}).json()
        status = wait_ready(url_b, job["job_id"])
        assert status["status"] == "ready" and status["total"] == len(objects)
        reply = call(url_b, "GET", f"{ARCHIVE}/{job['job_id']}/download")
        assert reply.status == 200
        members = archive_members(reply.body)
        assert all(members[key] == data for key, data in objects.items())
        assert call(url_b, "DELETE", f"{ARCHIVE}/{job['job_id']}").status == 200
        assert call(url_a, "GET", f"{ARCHIVE}/{job['job_id']}/status").status == 404


def test_cancel_stops_a_job_and_removes_its_archive(service):
    service.set_execution_status("BIG", "running")
    for n in range(40):
        service.put(f"executions/BIG/r/s/{n:03d}.bin", bytes([n]) * (2 * 1024 * 1024))
    with running_server(service) as url:
        job = call(url, "POST", f"{ARCHIVE}/prepare", {"execution_id": "BIG"}).json()
        reply = call(url, "DELETE", f"{ARCHIVE}/{job['job_id']}")
        assert reply.status == 200
        assert (reply.json()["status"], reply.json()["deleted"]) == ("cancelled", False)
        status = wait_ready(url, job["job_id"])
        assert status["status"] == "cancelled"
        download = call(url, "GET", f"{ARCHIVE}/{job['job_id']}/download")
        assert download.status == 409 and download.json()["error_code"] == "conflict"
        deadline = time.monotonic() + 30
        while any(name.endswith(".zip") for name in service.provider.list_records("jobs/")):
            assert time.monotonic() < deadline, "the cancelled job's archive was not removed"
            time.sleep(0.1)
        # Once its packer has stopped, a second DELETE removes the job altogether.
        while not call(url, "DELETE", f"{ARCHIVE}/{job['job_id']}").json()["deleted"]:
            assert time.monotonic() < deadline, "the cancelled job's packer did not stop"
            time.sleep(0.1)
        assert call(url, "GET", f"{ARCHIVE}/{job['job_id']}/status").status == 404
        assert list(service.provider.list_records("jobs/")) == []


def test_a_cancel_from_another_replica_is_seen_and_a_dead_packer_reads_as_failed(service):
    """Records written as a live packer on some other replica would write them."""
    populate(service)
    store = JobStore(service.provider, ttl=3600, stale_after=60)
    live = {"job_id": "a" * 32, "status": "preparing", "execution_id": "E1", "total": 13, "processed": 4,
            "bytes_packed": 10, "filename": "E1.zip", "file_size": None, "error": None, "created_at": None}
    store.write(dict(live))
    store.provider.put_record(f"jobs/{'b' * 32}.json", orjson.dumps(
        {**live, "job_id": "b" * 32, "updated_at": format_time(datetime.now(timezone.utc) - timedelta(minutes=2))}))
    with running_server(service) as url:
        status = call(url, "GET", f"{ARCHIVE}/{'a' * 32}/status").json()
        assert (status["status"], status["progress"]) == ("preparing", round(4 / 13, 4))
        early = call(url, "GET", f"{ARCHIVE}/{'a' * 32}/download")
        assert early.status == 409 and "preparing" in early.json()["detail"]
        assert call(url, "DELETE", f"{ARCHIVE}/{'a' * 32}").json()["status"] == "cancelled"
        store.write(dict(live))  # the packer's next heartbeat cannot undo the cancellation
        assert call(url, "GET", f"{ARCHIVE}/{'a' * 32}/status").json()["status"] == "cancelled"

        stale = call(url, "GET", f"{ARCHIVE}/{'b' * 32}/status").json()
        assert (stale["status"], stale["error"]) == ("failed", STALE_ERROR)


def test_finished_jobs_expire(service, monkeypatch):
    populate(service)
    # Long enough that the job's readiness is seen on a loaded machine before it expires.
    monkeypatch.setenv("FACTFLOW_ARCHIVE_TTL", "5s")
    with running_server(service) as url:
        job = call(url, "POST", f"{ARCHIVE}/prepare", {"execution_id": "E1"}).json()
        status = wait_ready(url, job["job_id"])
        assert status["status"] == "ready" and status["expires_at"]
        reply = eventually(lambda: (r := call(url, "GET", f"{ARCHIVE}/{job['job_id']}/status")).status == 404 and r,
                           "the job to expire")
        assert "expired" in reply.json()["detail"]
    assert list(service.provider.list_records("jobs/")) == []


@pytest.mark.parametrize("method, path, body, status, code", [
    ("GET", f"{ARCHIVE}/{'0' * 32}/status", None, 404, "not_found"),
    ("GET", f"{ARCHIVE}/nope/download", None, 404, "not_found"),
    ("DELETE", f"{ARCHIVE}/%2e%2e", None, 404, "not_found"),
    ("POST", f"{ARCHIVE}/prepare", {"execution_id": "NOPE"}, 404, "not_found"),
    ("POST", f"{ARCHIVE}/prepare", {"execution": "E1"}, 400, "bad_request"),
    ("POST", f"{ARCHIVE}/prepare", {"execution_id": "E1", "domain": "files"}, 400, "bad_request"),
    ("POST", f"{ARCHIVE}/prepare", {"execution_id": "E1", "routes": "a/b"}, 400, "invalid_key"),
    ("POST", f"{ARCHIVE}/prepare", {"execution_id": "E1", "keys": ["executions/E2/r/s/x"]}, 400, "invalid_key"),
    ("POST", f"{ARCHIVE}/prepare", [], 400, "bad_request"),
])
def test_errors_answer_in_the_json_error_shape(file_storage, method, path, body, status, code):
    service = StorageService(file_storage.open())
    populate(service)
    with running_server(service) as url:
        reply = call(url, method, path, body)
    assert reply.status == status, reply.body
    assert set(reply.json()) == {"detail", "error_code", "timestamp"}
    assert reply.json()["error_code"] == code


def test_openapi_describes_the_archive_routes(file_storage):
    with running_server(StorageService(file_storage.open())) as url:
        paths = call(url, "GET", "/api/v1/openapi.json").json()["paths"]
    prepare = paths[f"{ARCHIVE}/prepare"]["post"]
    assert "keys" in prepare["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {f"{ARCHIVE}/{{job}}/status", f"{ARCHIVE}/{{job}}/download", f"{ARCHIVE}/{{job}}"} <= set(paths)


def test_deleting_an_execution_cancels_its_archive_job_and_never_serves_it(service):
    service.set_execution_status("GONE", "running")
    for n in range(20):
        service.put(f"executions/GONE/r/s/{n:03d}.bin", bytes([n]) * (2 * 1024 * 1024))
    service.set_execution_status("GONE", "completed")
    # The packer waits at the eleventh object until the deletion has cancelled its job, so
    # the deletion meets a job still packing however busy the machine (a job that finished
    # first is removed whole, a case of its own).
    cancelled = threading.Event()
    provider_open = service.provider.open

    def held_open(key, **options):
        if key.endswith("/010.bin"):
            cancelled.wait(60)
        return provider_open(key, **options)

    service.provider.open = held_open
    with running_server(service) as url:
        job = call(url, "POST", f"{ARCHIVE}/prepare", {"execution_id": "GONE"}).json()
        assert job["status"] == "preparing"
        deleted = call(url, "DELETE", "/api/v1/executions/GONE?confirm=true")
        assert deleted.status == 200 and deleted.json()["executions"][0]["deleted"]["archive_jobs"] == 1
        reply = call(url, "GET", f"{ARCHIVE}/{job['job_id']}/status")
        assert reply.status == 200 and reply.json()["status"] == "cancelled", reply.json()
        cancelled.set()
        deadline = time.monotonic() + 60
        while True:  # the packer writes its final record once it has stopped
            reply = call(url, "GET", f"{ARCHIVE}/{job['job_id']}/status")
            if reply.status == 200 and reply.json()["status"] != "preparing":
                break
            assert time.monotonic() < deadline, f"the packer never finished: {reply.status} {reply.json()}"
            time.sleep(0.05)
        assert reply.json()["status"] in ("cancelled", "failed"), reply.json()
        download = call(url, "GET", f"{ARCHIVE}/{job['job_id']}/download")
        assert download.status in (404, 409), download.status
        # The packer has stopped once its stored record is final (not before the server goes).
        while orjson.loads(service.provider.get_record(record_name(job["job_id"])))["status"] == "preparing":
            assert time.monotonic() < deadline, "the packer never wrote its final record"
            time.sleep(0.05)
        while any(name.endswith(".zip") for name in service.provider.list_records("jobs/")):
            assert time.monotonic() < deadline, "the deleted execution's archive stayed"
            time.sleep(0.1)

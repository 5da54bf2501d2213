"""What archive jobs may cost a server: identical requests share a job, jobs packing
at once and archive bytes are capped, and a job nobody polls is cancelled and removed."""

from __future__ import annotations

import os
import threading
import time

import orjson
import pytest

from factflow_storage.archive.limits import ArchiveLimits, parse_size
from factflow_storage.errors import ConfigError
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

ARCHIVE = "/api/v1/content/archive"
MIB = 1024**2


def prepare(url: str, body: dict):
    return http_request(url, "POST", f"{ARCHIVE}/prepare", body=orjson.dumps(body),
                        headers={"Content-Type": "application/json"})


def job_files(service: StorageService) -> list[str]:
    return sorted(service.provider.list_records("jobs/"))


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def service(file_storage):
    with file_storage.open() as provider:
        service = StorageService(provider)
        service.set_execution_status("E1", "running")
        for stage in ("a", "b", "c", "d", "e", "f", "g", "h"):
            service.put(f"executions/E1/r/{stage}/small.txt", stage.encode() * 100)
        service.set_execution_status("E1", "completed")
        yield service


@pytest.fixture
def slow(service):
    """An execution whose archive takes a while to pack: incompressible bytes."""
    service.set_execution_status("SLOW", "running")
    for stage in ("a", "b", "c", "d", "e", "f", "g", "h"):
        service.put(f"executions/SLOW/r/{stage}/noise.bin", os.urandom(12 * MIB))
    service.set_execution_status("SLOW", "completed")
    return service


def test_identical_requests_share_one_job(service):
    with running_server(service) as url:
        replies: list = []
        threads = [threading.Thread(target=lambda: replies.append(prepare(url, {"execution_id": "E1"})))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(reply.status == 200 for reply in replies)
        assert len({reply.json()["job_id"] for reply in replies}) == 1
        assert len([name for name in job_files(service) if name.endswith(".request.json")]) == 1
        other = prepare(url, {"execution_id": "E1", "stage": "a"})
        assert other.json()["job_id"] != replies[0].json()["job_id"]


def test_jobs_packing_at_once_are_capped(slow):
    # Eight different requests (the same stages in another order) each pack all 96 MiB, and
    # are sent at once; no job reads an object before the last request is answered, so
    # none can finish and free its slot early however slowly the requests arrive.
    answered = threading.Event()
    reads: list[str] = []
    provider_open = slow.provider.open

    def held_open(key, **options):
        reads.append(key)
        answered.wait(60)
        return provider_open(key, **options)

    slow.provider.open = held_open
    stages = "abcdefgh"
    bodies = [{"execution_id": "SLOW", "stages": list(stages[n:] + stages[:n])} for n in range(8)]
    with running_server(slow, archive_limits=ArchiveLimits(max_jobs=2)) as url:
        replies: list = []
        threads = [threading.Thread(target=lambda body=body: replies.append(prepare(url, body))) for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        answered.set()
        assert reads, "the jobs read nothing through the held open"
        accepted = [reply for reply in replies if reply.status == 200]
        refused = [reply for reply in replies if reply.status == 503]
        assert len(accepted) == 2 and len(refused) == 6
        assert all(reply.json()["error_code"] == "busy" and int(reply.headers["retry-after"]) > 0
                   for reply in refused)


def test_a_job_crossing_the_byte_cap_fails_and_leaves_no_archive(slow):
    with running_server(slow, archive_limits=ArchiveLimits(max_bytes=4 * MIB)) as url:
        job = prepare(url, {"execution_id": "SLOW"}).json()["job_id"]

        def finished() -> bool:
            return http_request(url, "GET", f"{ARCHIVE}/{job}/status").json()["status"] != "preparing"

        assert wait_for(finished)
        status = http_request(url, "GET", f"{ARCHIVE}/{job}/status").json()
        assert status["status"] == "failed" and "limit" in status["error"]
        assert not any(name.endswith(".zip") for name in job_files(slow))


def test_a_preparing_job_nobody_polls_is_cancelled_and_removed(slow):
    # Idle for 2 s: long past the prepare's answer on a loaded machine, so the job's files
    # are there to be seen before they go.
    with running_server(slow, archive_limits=ArchiveLimits(idle=2.0)) as url:
        job = prepare(url, {"execution_id": "SLOW"}).json()["job_id"]
        assert job_files(slow)
        assert wait_for(lambda: not job_files(slow))
        assert http_request(url, "GET", f"{ARCHIVE}/{job}/status").status == 404


def test_a_ready_archive_nobody_fetches_is_removed(service):
    with running_server(service, archive_limits=ArchiveLimits(idle=1.0)) as url:
        job = prepare(url, {"execution_id": "E1"}).json()["job_id"]
        assert wait_for(lambda: http_request(url, "GET", f"{ARCHIVE}/{job}/status").json()["status"] == "ready")
        assert any(name.endswith(".zip") for name in job_files(service))
        assert wait_for(lambda: not job_files(service))
        assert http_request(url, "GET", f"{ARCHIVE}/{job}/status").status == 404


def test_the_limits_are_parsed_from_settings():
    limits = ArchiveLimits.from_env({"FACTFLOW_ARCHIVE_MAX_JOBS": "3", "FACTFLOW_ARCHIVE_MAX_BYTES": "2G",
                                     "FACTFLOW_ARCHIVE_IDLE": "90s"})
    assert limits == ArchiveLimits(max_jobs=3, max_bytes=2 * 1024**3, idle=90.0)
    assert parse_size("512MiB", "x", 0) == 512 * MIB and parse_size("100", "x", 0) == 100
    for name, bad in (("FACTFLOW_ARCHIVE_MAX_JOBS", "0"), ("FACTFLOW_ARCHIVE_MAX_BYTES", "lots"),
                      ("FACTFLOW_ARCHIVE_IDLE", "-1")):
        with pytest.raises(ConfigError):
            ArchiveLimits.from_env({name: bad})

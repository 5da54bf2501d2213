"""The ``--api`` HTTP client over real loopback HTTP: connections are kept alive and
reused (counted by a relay in front of the server), idempotent requests are retried
after a dropped connection, and a POST is not."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from factflow_storage.client import RemoteService
from factflow_storage.errors import Unavailable
from factflow_storage.service import StorageService
from server_fixture import running_server
from tcp_counter import CountingRelay

OBJECTS = 1000


@pytest.fixture
def served(file_storage):
    service = StorageService(file_storage.open())
    with running_server(service, threads=8) as url:
        relay = CountingRelay(url)
        try:
            yield service, relay, file_storage
        finally:
            relay.close()


def _populate(service: StorageService, count: int) -> list[str]:
    service.set_execution_status("E1", "running")
    keys = [f"executions/E1/fetch/html/page-{n:04d}.html" for n in range(count)]
    for n, key in enumerate(keys):
        service.put(key, f"<p>{n}</p>".encode(), {"n": n})
    service.set_execution_status("E1", "completed")
    return keys


def test_a_thousand_reads_share_a_handful_of_connections(served):
    service, relay, _ = served
    keys = _populate(service, 200)
    remote = RemoteService(relay.url)
    for key in keys * 5:
        with remote.open(key) as stream:
            assert stream.read() == service.open(key).read()
        assert remote.metadata(key)["n"] == keys.index(key)
    remote.close()
    assert relay.connections <= 2, f"{relay.connections} connections for {len(keys) * 10} requests"


def test_download_api_of_a_thousand_objects_opens_a_handful_of_connections(served, tmp_path):
    service, relay, storage = served
    _populate(service, OBJECTS)
    env = dict(storage.cli_env(), FACTFLOW_API_URL=relay.url)
    argv = [sys.executable, "-m", "factflow_storage", "-o", "json", "storage", "download", "E1",
            "--output-dir", str(tmp_path / "out")]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert orjson.loads(first.stdout)["fetched"] == OBJECTS
    # A re-run checks every file already there against the server's checksums.
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout)["fetched"] == 0
    assert relay.connections <= 4, f"{relay.connections} connections for two downloads of {OBJECTS} objects"


def test_a_dropped_connection_is_retried_for_reads(served):
    service, relay, _ = served
    keys = _populate(service, 3)
    relay.drop_first = 2
    remote = RemoteService(relay.url)
    assert remote.open(keys[0]).read() == b"<p>0</p>"
    assert relay.connections == 3


def test_a_post_is_not_sent_twice(served):
    service, relay, _ = served
    _populate(service, 3)
    relay.drop_first = 1
    remote = RemoteService(relay.url)
    with pytest.raises(Unavailable, match="cannot reach the factflow API"):
        remote.api.send_json("POST", "/api/v1/content/archive/prepare", {"execution_id": "E1"})
    assert relay.connections == 1


def test_debug_shows_the_http_requests_and_the_default_shows_none(served):
    service, relay, storage = served
    _populate(service, 2)
    env = dict(storage.cli_env(), FACTFLOW_API_URL=relay.url)
    argv = [sys.executable, "-m", "factflow_storage", "storage", "list", "--execution", "E1"]
    quiet = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stderr == ""
    debug = subprocess.run(argv[:3] + ["--debug"] + argv[3:], env=env, capture_output=True, text=True, timeout=60)
    assert debug.returncode == 0, debug.stderr
    assert debug.stdout == quiet.stdout
    assert "GET /api/v1/storage/objects?prefix=executions%2FE1%2F" in debug.stderr
    assert " -> 200" in debug.stderr

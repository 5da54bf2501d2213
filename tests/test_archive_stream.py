"""``POST /api/v1/content/archive/stream``: an archive sent while it is packed, as
``download --api`` reads it. Real waitress over loopback, the real CLI as a subprocess;
what is asserted is what the user sees: exit codes, stderr, files, HTTP answers."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import urllib3
from waitress import create_server

from factflow_storage.api_paths import ARCHIVE
from factflow_storage.archive.limits import ArchiveLimits
from factflow_storage.client import RemoteService
from factflow_storage.download.extract import extract_archive
from factflow_storage.download.fetch import BROKEN_OFF
from factflow_storage.download.tree import OutputTree
from factflow_storage.errors import StorageError, Unavailable
from factflow_storage.retention.delete import delete_executions
from factflow_storage.server.app import make_app, stop_server
from factflow_storage.service import StorageService
from factflow_storage.zipformat.zipreader import UnsafeArchive
from server_fixture import running_server
from tree_support import files_under

STREAM = ARCHIVE + "/stream"
LOGGER = "factflow_storage.archive.stream"


def download(storage, url: str, out, *args: str) -> subprocess.CompletedProcess:
    env = {**storage.cli_env(), "FACTFLOW_API_URL": url}
    return subprocess.run([sys.executable, "-m", "factflow_storage", "storage", "download", "E1",
                           "--output-dir", str(out), "--quiet", *args],
                          env=env, capture_output=True, text=True, timeout=300)


def populate(service: StorageService, count: int, size: int, execution_id: str = "E1") -> dict[str, bytes]:
    service.set_execution_status(execution_id, "running")
    objects = {f"executions/{execution_id}/r/s/a-{n:03d}.bin": bytes([n % 251]) * size for n in range(count)}
    for key, data in objects.items():
        service.put(key, data, {"adapter": "test"})
    service.set_execution_status(execution_id, "completed")
    return objects


class LogSignal(logging.Handler):
    """Sets an event when the stream's logger says ``words``: the server's own signal."""

    def __init__(self, words: str):
        super().__init__(logging.INFO)
        self.words = words
        self.seen = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if self.words in record.getMessage():
            self.seen.set()


@pytest.fixture
def stream_log() -> Iterator[LogSignal]:
    logger = logging.getLogger(LOGGER)
    handler = LogSignal("")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_download_api_writes_the_tree_from_the_stream_and_stores_nothing(storage, tmp_path):
    service = StorageService(storage.open())
    objects = populate(service, 6, 3 * 1024 * 1024)  # past one pipe chunk: several writes
    with running_server(service) as url:
        result = download(storage, url, tmp_path / "out", "--no-metadata")
    assert result.returncode == 0, result.stderr
    assert files_under(tmp_path / "out") == objects
    assert list(service.provider.list_records("jobs/")) == []  # no job, no stored archive
    service.provider.close()


def _truncating(app, cut):
    """The real app, except that the stream's zip arrives short by ``cut(size)`` bytes,
    in a well-formed HTTP answer (only the zip can tell)."""

    def serve(environ, start_response):
        if not environ["PATH_INFO"].endswith("/stream"):
            return app(environ, start_response)
        captured: dict = {}
        body = app(environ, lambda status, headers, exc_info=None: captured.update(status=status))
        try:
            whole = b"".join(body)
        finally:
            getattr(body, "close", lambda: None)()
        short = whole[:len(whole) - cut(len(whole))]
        start_response(captured["status"], [("Content-Type", "application/zip"),
                                            ("Content-Length", str(len(short)))])
        return [short]

    return serve


@pytest.mark.parametrize("cut", [1, 22, 5000], ids=["inside-end-record", "before-end-record", "mid-member"])
def test_a_truncated_zip_is_never_reported_as_success(file_storage, tmp_path, cut):
    service = StorageService(file_storage.open())
    populate(service, 4, 64 * 1024)
    server = create_server(_truncating(make_app(service), lambda size: cut), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        result = download(file_storage, f"http://127.0.0.1:{server.effective_port}", tmp_path / "out")
    finally:
        stop_server(server)
        thread.join(timeout=5)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and BROKEN_OFF in result.stderr
    assert "Traceback" not in result.stderr


def test_a_stream_the_server_cannot_finish_fails_the_download(file_storage, tmp_path, stream_log):
    """A stored object whose bytes no longer match its sha256, packed after the first
    megabytes are out: the server cuts the stream, the CLI says so and keeps what it
    verified."""
    service = StorageService(file_storage.open())
    objects = populate(service, 8, 512 * 1024)
    damaged = "executions/E1/r/s/z-damaged.bin"
    service.put(damaged, b"intact", {"adapter": "test"})
    path = os.path.join(file_storage.uri[len("file://"):], damaged)
    with open(path, "r+b") as handle:
        handle.write(b"broken")  # same size, other bytes
    stream_log.words = "cut off"
    with running_server(service) as url:
        result = download(file_storage, url, tmp_path / "out", "--no-metadata")
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and BROKEN_OFF in result.stderr
    written = files_under(tmp_path / "out")
    assert damaged not in written
    assert {key: data for key, data in written.items() if key in objects} == written  # all verified
    assert stream_log.seen.wait(30), stream_log.messages
    assert any("does not match its checksum" in message for message in stream_log.messages)


def test_deleting_the_execution_while_it_streams_cuts_the_stream(storage, tmp_path, stream_log):
    service = StorageService(storage.open())
    populate(service, 40, 2 * 1024 * 1024)  # far more than the pipe and socket buffers hold
    stream_log.words = "cut off"
    with running_server(service) as url:
        remote = RemoteService(url)
        response = remote.open_archive_stream({"execution_id": "E1", "include_metadata": False})
        # Headers are in: the first megabyte was packed; the packer now waits on this reader.
        delete_executions(service.provider, ["E1"], confirm=True)
        with OutputTree(str(tmp_path / "out")) as tree, response:
            with pytest.raises((Unavailable, UnsafeArchive)):
                extract_archive(response, tree, lambda key: True)
        remote.close()
        assert stream_log.seen.wait(30), stream_log.messages
    assert any("deleted" in message for message in stream_log.messages), stream_log.messages
    service.provider.close()


def test_ctrl_c_stops_the_servers_packing(storage, tmp_path, stream_log):
    from factflow_storage.cli.download import INTERRUPTED

    service = StorageService(storage.open())
    populate(service, 60, 2 * 1024 * 1024)
    stream_log.words = "client went away"
    out = tmp_path / "out"
    with running_server(service) as url:
        env = {**storage.cli_env(), "FACTFLOW_API_URL": url}
        process = subprocess.Popen([sys.executable, "-m", "factflow_storage", "storage", "download", "E1",
                                    "--output-dir", str(out)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not any(name.endswith(".bin") for _, _, names in os.walk(out) for name in names):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert err.decode().strip() == INTERRUPTED
        assert stream_log.seen.wait(30), stream_log.messages
    service.provider.close()


def test_streams_take_packing_slots_and_need_the_token(file_storage):
    service = StorageService(file_storage.open())
    populate(service, 30, 2 * 1024 * 1024)
    body = orjson.dumps({"execution_id": "E1"})
    with running_server(service, token="secret", archive_limits=ArchiveLimits(max_jobs=1)) as url:
        pool = urllib3.PoolManager()
        anonymous = pool.request("POST", url + STREAM, body=body, headers={"Content-Type": "application/json"})
        assert anonymous.status == 401
        assert set(orjson.loads(anonymous.data)) == {"detail", "error_code", "timestamp"}
        auth = {"Content-Type": "application/json", "Authorization": "Bearer secret"}
        first = pool.request("POST", url + STREAM, body=body, headers=auth, preload_content=False)
        assert first.status == 200 and first.headers["Content-Type"] == "application/zip"
        second = pool.request("POST", url + STREAM, body=body, headers=auth)
        assert second.status == 503, second.data
        assert orjson.loads(second.data)["error_code"] == "busy"
        assert orjson.loads(pool.request("POST", url + ARCHIVE + "/prepare", body=body, headers=auth).data
                            )["error_code"] == "busy"
        first.release_conn()
        first.close()  # the client goes away: its slot comes back
        deadline = time.monotonic() + 30
        while (third := pool.request("POST", url + STREAM, body=body, headers=auth,
                                     preload_content=False)).status == 503:
            third.close()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert third.status == 200
        third.close()
        pool.clear()
    service.provider.close()


def test_unknown_execution_answers_404_before_any_byte(file_storage):
    service = StorageService(file_storage.open())
    with running_server(service) as url:
        remote = RemoteService(url)
        with pytest.raises(StorageError, match="no execution 'NOPE'"):
            remote.open_archive_stream({"execution_id": "NOPE"})
        remote.close()
    service.provider.close()

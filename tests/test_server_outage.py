"""A provider that goes away gives 503 in the error shape, and the server recovers by
itself when the provider is back.

For S3 the provider reaches the suite's real S3 server through a loopback relay that
this test takes down and brings back on the same port: to the provider that is the S3
endpoint refusing connections, then answering again, without disturbing the session's
S3 server that other tests share.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading

from click.testing import CliRunner

from factflow_storage import create_storage_provider
from factflow_storage.cli.main import cli
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

OBJECTS = "/api/v1/storage/objects"


class Relay:
    """Forwards a loopback port to ``target``; ``down()`` closes it and every connection."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [listener, *sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def assert_unavailable(reply) -> None:
    assert reply.status == 503, reply.body
    body = reply.json()
    assert set(body) == {"detail", "error_code", "timestamp"}
    assert body["error_code"] in ("storage_unavailable", "bad_credentials", "bucket_not_found")


def cli_browse(url: str) -> tuple[int, bytes, bytes]:
    env = {name: None for name in os.environ if name.startswith("FACTFLOW_")} | {"FACTFLOW_API_URL": url}
    result = CliRunner().invoke(cli, ["storage", "browse"], env=env, catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr_bytes


def test_s3_going_away_gives_503_and_recovers(s3_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bucket = s3_server.new_bucket()
    host, port = s3_server.endpoint.rsplit(":", 1)
    relay = Relay((host, int(port)))
    relay.up()
    options = {**s3_server.options(), "endpoint": f"127.0.0.1:{relay.port}"}
    try:
        with create_storage_provider(f"minio://{bucket}", options) as provider, \
                running_server(StorageService(provider)) as url:
            provider.write("k/one.txt", b"one")
            assert http_request(url, "GET", OBJECTS + "/k/one.txt").body == b"one"

            relay.down()
            for method, path in (("GET", OBJECTS + "/k/one.txt"), ("GET", OBJECTS + "?prefix=k/"),
                                 ("GET", OBJECTS + "/k/one.txt/metadata"), ("GET", "/api/v1/health"),
                                 ("GET", "/api/v1/executions")):
                assert_unavailable(http_request(url, method, path))
            assert_unavailable(http_request(url, "PUT", OBJECTS + "/k/two.txt", body=b"two"))
            code, out, err = cli_browse(url)
            assert (code, out) == (1, b"") and len(err.splitlines()) == 1 and b"S3" in err

            relay.up()  # the same port again
            assert http_request(url, "GET", "/api/v1/health").status == 200
            assert http_request(url, "GET", OBJECTS + "/k/one.txt").body == b"one"
            assert http_request(url, "PUT", OBJECTS + "/k/two.txt", body=b"two").status == 201
            assert cli_browse(url)[1].split() == [b"PRE", b"k/"]
    finally:
        relay.down()


def test_filesystem_root_going_away_gives_503_and_recovers(tmp_path):
    root = tmp_path / "storage"
    with create_storage_provider(f"file://{root}") as provider, running_server(StorageService(provider)) as url:
        provider.write("k/one.txt", b"one")
        assert http_request(url, "GET", "/api/v1/health").status == 200

        shutil.move(root, tmp_path / "aside")
        root.write_bytes(b"not a directory")  # the mount is gone and something else sits there
        assert_unavailable(http_request(url, "GET", "/api/v1/health"))
        assert_unavailable(http_request(url, "PUT", OBJECTS + "/k/two.txt", body=b"two"))

        root.unlink()
        shutil.move(tmp_path / "aside", root)
        assert http_request(url, "GET", "/api/v1/health").status == 200
        assert http_request(url, "GET", OBJECTS + "/k/one.txt").body == b"one"

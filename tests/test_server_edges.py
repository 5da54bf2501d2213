"""Event stream edges (a finished stream, storage down at open) and ``factflow serve``'s
own errors: one line, exit 1, never a traceback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from factflow_storage import create_storage_provider
from factflow_storage.cli.main import cli
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

EVENTS = "/api/v1/storage/events"


def _events(reply) -> list[tuple[str, str]]:
    """(id, event) of each frame of an SSE body."""
    frames = []
    for block in reply.body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            frames.append((fields.get("id", ""), fields["event"]))
    return frames


def test_a_reconnect_after_the_completion_is_204(file_storage):
    with file_storage.open() as provider:
        service = StorageService(provider)
        service.put("executions/done/r/s/a.txt", b"a")
        service.set_execution_status("done", "completed")
        with running_server(service) as url:
            first = http_request(url, "GET", f"{EVENTS}?execution_id=done&timeout=5")
            frames = _events(first)
            assert [name for _, name in frames] == ["storage.object.created", "execution.completed"]
            again = http_request(url, "GET", f"{EVENTS}?execution_id=done&timeout=5",
                                 headers={"Last-Event-ID": frames[-1][0]})
            assert again.status == 204 and again.body == b""
            # a reconnect from the middle still gets what it missed and the completion
            middle = http_request(url, "GET", f"{EVENTS}?execution_id=done&timeout=5",
                                  headers={"Last-Event-ID": frames[0][0]})
            assert [name for _, name in _events(middle)] == ["execution.completed"]
            # the execution restarted: the same id resumes instead of stopping
            service.set_execution_status("done", "running")
            service.put("executions/done/r/s/b.txt", b"b")
            service.set_execution_status("done", "completed")
            resumed = http_request(url, "GET", f"{EVENTS}?execution_id=done&timeout=5",
                                   headers={"Last-Event-ID": frames[-1][0]})
            assert resumed.status == 200
            assert [name for _, name in _events(resumed)] == ["storage.object.created", "execution.completed"]


def test_storage_down_at_open_is_503_json(tmp_path):
    root = tmp_path / "storage"
    with create_storage_provider(f"file://{root}") as provider, running_server(StorageService(provider)) as url:
        provider.write("executions/e/r/s/a.txt", b"a")
        shutil.move(root, tmp_path / "aside")
        root.write_bytes(b"not a directory")
        reply = http_request(url, "GET", f"{EVENTS}?execution_id=e&timeout=2")
        assert reply.status == 503 and reply.headers["content-type"] == "application/json"
        assert set(reply.json()) == {"detail", "error_code", "timestamp"}


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


@pytest.mark.parametrize("host", ["127.0.0.1 ", "no-such-host.invalid", " localhost"])
@pytest.mark.parametrize("token", [None, "t0ken"])
def test_serve_bad_hosts_are_one_line(tmp_path, host, token):
    result = CliRunner().invoke(cli, ["--storage", f"file://{tmp_path}", "serve", "--host", host, "--port", "0"],
                                env={"FACTFLOW_API_TOKEN": token})
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_serve_on_a_port_in_use_is_one_line_as_a_process(tmp_path):
    with _busy_port() as sock:
        port = sock.getsockname()[1]
        result = CliRunner().invoke(cli, ["--storage", f"file://{tmp_path}", "serve", "--port", str(port)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1 and str(port) in result.output
        done = subprocess.run([sys.executable, "-m", "factflow_storage", "--storage", f"file://{tmp_path}",
                               "serve", "--port", str(port)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""

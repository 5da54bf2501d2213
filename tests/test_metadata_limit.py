"""One metadata size limit (64 KiB of JSON), refused at write time on every provider and
every write path: the Python API, the CLI in both modes, and HTTP PUT."""

from __future__ import annotations

import io
import subprocess
import sys

import orjson
import pytest

from factflow_storage.errors import TooLarge
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

KEY = "executions/L1/r/s/object.json"
MAX_METADATA_BYTES = 64 * 1024  # the documented limit
OVER = {"pad": "p" * MAX_METADATA_BYTES}
UNDER = {"pad": "p" * (MAX_METADATA_BYTES - 2048)}  # room for the computed fields


class Stream(io.RawIOBase):
    """A source of unknown length (so an S3 upload would go up in parts)."""

    def __init__(self, size: int):
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._left)
        buffer[:n] = b"s" * n
        self._left -= n
        return n


def test_the_python_api_refuses_a_blob_over_the_limit(provider):
    with pytest.raises(TooLarge, match="over the limit of 65536 bytes"):
        provider.write(KEY, b"{}", OVER)
    with pytest.raises(TooLarge):
        provider.write(KEY, Stream(9 * 1024 * 1024), OVER)
    assert not provider.exists(KEY)
    stored = provider.write(KEY, b"{}", UNDER)
    assert provider.metadata(KEY) == stored


@pytest.mark.parametrize("mode", ["direct", "api"])
def test_the_cli_and_http_put_refuse_a_blob_over_the_limit(storage, mode, tmp_path):
    service = StorageService(storage.open())
    with running_server(service) as url:
        env = storage.cli_env()
        if mode == "api":
            env["FACTFLOW_API_URL"] = url

        def cli(*args: str, stdin: bytes = b"{}") -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "factflow_storage", *args], env=env, input=stdin,
                                  capture_output=True, timeout=60)

        refused = cli("storage", "put", KEY, "--metadata", orjson.dumps(OVER).decode())
        assert refused.returncode == 1
        lines = refused.stderr.decode().splitlines()
        assert len(lines) == 1 and "over the limit of 65536 bytes" in lines[0], lines
        assert not service.provider.exists(KEY)

        reply = http_request(url, "PUT", f"/api/v1/storage/objects/{KEY}", body=b"{}",
                             headers={"X-Factflow-Metadata": orjson.dumps(OVER)})
        assert reply.status == 413
        error = orjson.loads(reply.body)
        assert set(error) == {"detail", "error_code", "timestamp"} and error["error_code"] == "too_large"
        assert not service.provider.exists(KEY)

        # Just under the limit: stored, and downloaded in this mode with its sidecar.
        assert cli("storage", "put", KEY, "--metadata", orjson.dumps(UNDER).decode()).returncode == 0
        service.set_execution_status("L1", "completed")
        out = tmp_path / "out"
        done = cli("storage", "download", "L1", "-d", str(out))
        assert done.returncode == 0, done.stderr
        assert orjson.loads((out / (KEY + ".meta.json")).read_bytes())["pad"] == UNDER["pad"]
    service.provider.close()


def test_the_cli_refuses_it_in_process_too(file_storage):
    from click.testing import CliRunner

    from factflow_storage.cli.main import cli

    result = CliRunner().invoke(cli, ["storage", "put", KEY, "--metadata", orjson.dumps(OVER).decode()], input=b"{}",
                                env=file_storage.cli_env(), catch_exceptions=False, prog_name="factflow")
    assert result.exit_code == 1
    assert "over the limit of 65536 bytes" in result.output and "Traceback" not in result.output
    assert not file_storage.open().exists(KEY)

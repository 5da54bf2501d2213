"""``factflow storage ...`` on ``minio://`` and ``s3://`` URIs, in-process (CliRunner) and
as a subprocess, against the real S3 server: what a user sees, bytes and exit codes."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

import orjson
import pytest
from click.testing import CliRunner

from factflow_storage.cli.main import cli

pytestmark = pytest.mark.s3


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(extra)
    return env


@pytest.fixture
def s3_env(s3_server, tmp_path, monkeypatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("FACTFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return {**s3_server.env(), "FACTFLOW_STORAGE_URI": f"minio://{s3_server.new_bucket()}"}


def invoke(env: dict[str, str], *args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False, prog_name="factflow")


def ok(env, *args, input=None):
    result = invoke(env, *args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def one_line_error(result, says: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: ") and says in result.stderr, result.stderr


def factflow(env: dict[str, str], *args: str, input: bytes | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "factflow_storage", *args], input=input, capture_output=True,
                          env=clean_env(env), timeout=timeout)


def test_put_get_list_browse_metadata_delete_on_minio_uri(s3_env):
    key = "executions/e1/scraper/fetch/page-1.json"
    ok(s3_env, "storage", "put", key, "--metadata", '{"adapter": "web", "note": "日本"}',
       input=b'{"title": "hello"}')
    assert ok(s3_env, "storage", "get", key).stdout_bytes == b'{"title": "hello"}'
    document = orjson.loads(ok(s3_env, "storage", "get", key, "--output", "json").stdout_bytes)
    assert document["content"] == {"title": "hello"}
    rows = [orjson.loads(line) for line in ok(s3_env, "storage", "list", "--execution", "e1", "--output",
                                              "json").stdout_bytes.splitlines()]
    assert [(row["key"], row["size"]) for row in rows] == [(key, 18)]
    listing = orjson.loads(ok(s3_env, "storage", "browse", "executions/e1/", "--output", "json").stdout_bytes)
    assert listing == {"prefix": "executions/e1/", "common_prefixes": ["executions/e1/scraper/"], "objects": []}
    blob = orjson.loads(ok(s3_env, "storage", "metadata", key, "--output", "json").stdout_bytes)
    assert blob["note"] == "日本" and blob["adapter"] == "web" and blob["route_id"] == "scraper"
    assert blob["checksum"] == "sha256:" + hashlib.sha256(b'{"title": "hello"}').hexdigest()
    ok(s3_env, "storage", "delete", key)
    one_line_error(invoke(s3_env, "storage", "get", key), "no object")


def test_a_10_kib_metadata_blob_through_the_cli(s3_env):
    blob = {"lineage": [f"executions/e0/r/s/parent-{n:04d}" for n in range(350)]}
    assert len(orjson.dumps(blob)) > 10 * 1024
    ok(s3_env, "storage", "put", "docs/a.txt", "--metadata", orjson.dumps(blob).decode(), input=b"text")
    shown = orjson.loads(ok(s3_env, "storage", "metadata", "docs/a.txt", "--output", "json").stdout_bytes)
    assert shown["lineage"] == blob["lineage"]


def test_the_s3_alias_and_the_storage_option(s3_env):
    bucket = s3_env["FACTFLOW_STORAGE_URI"].removeprefix("minio://")
    ok(s3_env, "storage", "put", "alias/k", input=b"via minio://")
    env = {k: v for k, v in s3_env.items() if k != "FACTFLOW_STORAGE_URI"}
    assert ok(env, "--storage", f"s3://{bucket}", "storage", "get", "alias/k").stdout_bytes == b"via minio://"


def test_a_wrong_secret_is_one_line_and_exit_1(s3_env):
    env = {**s3_env, "FACTFLOW_MINIO_SECRET_KEY": "wrong"}
    one_line_error(invoke(env, "storage", "list"), "refused the credentials")
    one_line_error(invoke(env, "storage", "metadata", "any/key"), "refused the credentials")


def test_a_wrong_secret_as_a_subprocess(s3_env):
    done = factflow({**s3_env, "FACTFLOW_MINIO_SECRET_KEY": "wrong"}, "storage", "list")
    assert done.returncode == 1
    assert done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "refused the credentials" in lines[0] and "FACTFLOW_MINIO_SECRET_KEY" in lines[0]


def test_a_missing_bucket_is_one_line_unless_created_on_write(s3_env):
    env = {**s3_env, "FACTFLOW_STORAGE_URI": "minio://ff-cli-missing-bucket"}
    one_line_error(invoke(env, "storage", "list"), "does not exist")
    one_line_error(invoke(env, "storage", "put", "k", input=b"x"), "FACTFLOW_MINIO_CREATE_BUCKET=1")
    name = s3_env["FACTFLOW_STORAGE_URI"].replace("minio://ff-", "minio://ff-new-")[:40]
    created = {**s3_env, "FACTFLOW_STORAGE_URI": name, "FACTFLOW_MINIO_CREATE_BUCKET": "1"}
    assert ok(created, "storage", "list").stdout == ""
    ok(created, "storage", "put", "k", input=b"x")
    assert ok(created, "storage", "get", "k").stdout_bytes == b"x"


def test_an_unreachable_endpoint_is_one_line_within_seconds(s3_env):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes connections; nobody ever answers
        env = {**s3_env, "FACTFLOW_MINIO_ENDPOINT": f"127.0.0.1:{silent.getsockname()[1]}"}
        done = factflow(env, "storage", "list", timeout=30)
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "cannot reach S3" in lines[0], lines


def test_a_piped_stream_goes_up_and_comes_back_whole(s3_env):
    data = os.urandom(3 * 1024 * 1024) * 7  # 21 MiB: a multipart upload from stdin
    put = factflow(s3_env, "storage", "put", "big/blob.bin", "--output", "json", input=data)
    assert put.returncode == 0, put.stderr
    stored = orjson.loads(put.stdout)
    assert stored["content_length"] == len(data)
    assert stored["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    got = factflow(s3_env, "storage", "get", "big/blob.bin")
    assert got.returncode == 0 and got.stdout == data

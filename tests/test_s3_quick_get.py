"""``factflow storage get`` on S3 without minio-py: one signed GET over http.client, checked
against the suite's real S3 server; everything but the plain case goes through the provider,
with the provider's bytes, errors and exit codes."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from factflow_storage.providers.s3_quick import quick_open
from factflow_storage.registry import parse_storage_uri

_GET_PROBE = r"""
import runpy, sys
sys.argv = ["factflow", *sys.argv[1:]]
try:
    runpy.run_module("factflow_storage", run_name="__main__")
finally:
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"minio", "urllib3"})  # certifi: a .pth may load it
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""

KEYS = ["exec-1/route/stage/plain.bin",
        "exec-1/route/stage/with space, comma & plus+.txt",
        "exec-1/route/stage/ünïcödé – 日本語.md",
        "exec-1/route/stage/odd~chars=(1)!'*@$;.json"]


def _env(s3_server, uri: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(s3_server.env(), FACTFLOW_STORAGE_URI=uri, **extra)
    return env


def _get(env: dict, key: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _GET_PROBE, "storage", "get", key], capture_output=True,
                          env=env, timeout=60)


def _heavy(run: subprocess.CompletedProcess) -> str:
    return run.stderr.decode().splitlines()[-1]


@pytest.mark.parametrize("prefix", ["", "/team-a/sub"])
def test_get_signs_its_own_request_and_imports_no_minio(s3_server, bucket, prefix):
    uri = f"minio://{bucket}{prefix}"
    provider = parse_storage_uri(uri)
    from factflow_storage import create_storage_provider

    opened = create_storage_provider(uri, s3_server.options())
    payloads = {key: os.urandom(4096 + n) for n, key in enumerate(KEYS)}
    for key, data in payloads.items():
        opened.write(key, data)
    opened.close()
    for key, data in payloads.items():
        run = _get(_env(s3_server, uri), key)
        assert run.returncode == 0, run.stderr
        assert run.stdout == data
        assert _heavy(run) == "HEAVY=", run.stderr
        stream = quick_open(provider, s3_server.options(), key)
        assert stream is not None, f"the server refused the quick read of {key!r}"
        with stream:
            assert stream.read() == data


def test_an_empty_object(s3_server, bucket):
    from factflow_storage import create_storage_provider

    opened = create_storage_provider(f"minio://{bucket}", s3_server.options())
    opened.write("e/r/s/empty", b"")
    run = _get(_env(s3_server, f"minio://{bucket}"), "e/r/s/empty")
    assert (run.returncode, run.stdout, _heavy(run)) == (0, b"", "HEAVY=")


def test_metadata_in_a_companion_record_goes_through_the_provider(s3_server, bucket):
    from factflow_storage import create_storage_provider

    opened = create_storage_provider(f"minio://{bucket}", s3_server.options())
    data = b"bytes with a large blob"
    opened.write("e/r/s/big-meta.json", data, {"notes": "x" * 5000})
    run = _get(_env(s3_server, f"minio://{bucket}"), "e/r/s/big-meta.json")
    assert run.returncode == 0, run.stderr
    assert run.stdout == data
    assert _heavy(run) != "HEAVY="  # the companion record is checked by the provider


def test_another_tools_object(s3_server, bucket):
    data = b"written by another tool"
    s3_server.client().put_object(bucket_name=bucket, object_name="e/r/s/foreign.txt",
                                  data=io.BytesIO(data), length=len(data))
    run = _get(_env(s3_server, f"minio://{bucket}"), "e/r/s/foreign.txt")
    assert (run.returncode, run.stdout, _heavy(run)) == (0, data, "HEAVY=")


def test_a_missing_object_is_the_providers_error(s3_server, bucket):
    run = _get(_env(s3_server, f"minio://{bucket}"), "e/r/s/nope")
    assert run.returncode == 1
    assert run.stderr.decode().splitlines()[0] == "Error: no object 'e/r/s/nope'"
    assert "Traceback" not in run.stderr.decode()


def test_a_wrong_secret_is_the_providers_error(s3_server, bucket):
    run = _get(_env(s3_server, f"minio://{bucket}", FACTFLOW_MINIO_SECRET_KEY="wrong-secret"), "e/r/s/x")
    assert run.returncode == 1
    first = run.stderr.decode().splitlines()[0]
    assert "refused the credentials" in first and "FACTFLOW_MINIO_SECRET_KEY" in first


def test_an_unreachable_endpoint_is_the_providers_error(s3_server, bucket):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = _get(_env(s3_server, f"minio://{bucket}", FACTFLOW_MINIO_ENDPOINT=f"127.0.0.1:{port}"), "e/r/s/x")
    assert run.returncode == 1
    assert run.stderr.decode().splitlines()[0] == f"Error: cannot reach S3 at 127.0.0.1:{port}: connection refused"


def test_an_invalid_key_is_refused_before_any_request(s3_server, bucket):
    run = _get(_env(s3_server, f"minio://{bucket}"), "../etc/passwd")
    assert run.returncode != 0
    assert "Traceback" not in run.stderr.decode()
    assert _heavy(run) == "HEAVY="


def test_a_large_object_arrives_whole(s3_server, bucket):
    from factflow_storage import create_storage_provider

    data = os.urandom(3 * 1024 * 1024 + 5)
    opened = create_storage_provider(f"minio://{bucket}", s3_server.options())
    opened.write("e/r/s/large.bin", data)
    run = _get(_env(s3_server, f"minio://{bucket}"), "e/r/s/large.bin")
    assert (run.returncode, run.stdout == data, _heavy(run)) == (0, True, "HEAVY=")
    stream = quick_open(parse_storage_uri(f"minio://{bucket}"), s3_server.options(), "e/r/s/large.bin")
    with stream:
        assert stream.read(10) == data[:10]
        assert stream.read() == data[10:]


def _cutting_proxy(upstream: str, keep: int):
    """A loopback proxy for one connection that passes the answer's head and ``keep`` bytes
    of its body, then hangs up: a server dying mid-transfer."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    host, port = upstream.rsplit(":", 1)

    def serve() -> None:
        client, _ = listener.accept()
        with client, socket.create_connection((host, int(port))) as server:
            request = b""
            while b"\r\n\r\n" not in request:
                request += client.recv(65536)
            server.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < keep:
                chunk = server.recv(65536)
                if not chunk:
                    break
                answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            client.sendall(head + b"\r\n\r\n" + body[:keep])
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}"


def test_a_body_cut_short_is_the_providers_error(s3_server, bucket):
    from factflow_storage import create_storage_provider

    data = os.urandom(1024 * 1024)
    opened = create_storage_provider(f"minio://{bucket}", s3_server.options())
    opened.write("e/r/s/cut.bin", data)
    proxy = _cutting_proxy(s3_server.endpoint, 100_000)
    # The signature names the proxy as host; radosgw checks it against the Host header we send.
    run = _get(_env(s3_server, f"minio://{bucket}", FACTFLOW_MINIO_ENDPOINT=proxy), "e/r/s/cut.bin")
    assert run.returncode == 1
    assert len(run.stdout) < len(data) and data.startswith(run.stdout)
    assert run.stderr.decode().splitlines()[0] == f"Error: cannot reach S3 at {proxy}: the connection broke"


@pytest.mark.parametrize("value", ["Sun, 06 Nov 1994 08:49:37 GMT", "Tue, 29 Feb 2028 23:59:59 GMT",
                                   "Thu, 01 Jan 1970 00:00:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                                   "Sun, 6 Nov 1994 08:49:37 +0100"])
def test_http_dates_read_as_the_provider_reads_them(value):
    from factflow_storage.providers.s3_metadata import http_time
    from factflow_storage.providers.s3_quick import _http_date

    assert _http_date(value) == http_time(value)

"""S3 failures become the project's errors, each with one clear line, and an unreachable
endpoint fails within seconds (a silent listener, a closed port) instead of hanging."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading

import pytest
from minio.error import InvalidResponseError

from factflow_storage import create_storage_provider
from factflow_storage.errors import (AccessDenied, BadCredentials, BadRequest, NotFound, StorageError, TooLarge,
                                     Unavailable)
from factflow_storage.providers.s3_errors import ERROR_TABLE, READ_TIMEOUT, ErrorContext

pytestmark = pytest.mark.s3

# Seconds the failing call may take: a correctness bound (no hang, one read timeout and
# no retries: minio-py alone would retry for minutes), not a speed measurement. Timed in
# the child, so its start-up is not counted.
UNREACHABLE_BOUND = 2 * READ_TIMEOUT


@pytest.fixture
def bucket(s3_server) -> str:
    bucket = s3_server.new_bucket()
    good = create_storage_provider(f"minio://{bucket}", s3_server.options())
    good.write("k.txt", b"content")
    return bucket


def calls(provider):
    return {
        "stat": lambda: provider.stat("k.txt"),
        "metadata": lambda: provider.metadata("k.txt"),
        "exists": lambda: provider.exists("k.txt"),
        "read": lambda: provider.read("k.txt"),
        "list": lambda: list(provider.list()),
        "browse": lambda: list(provider.browse()),
        "write": lambda: provider.write("new.txt", b"x"),
        "delete": lambda: provider.delete("k.txt"),
        "check": lambda: provider.check(),
        "record": lambda: provider.read_execution("e1"),
    }


@pytest.mark.parametrize("call", sorted(calls(None)))
def test_a_wrong_secret_is_bad_credentials_on_every_call(s3_server, bucket, call):
    wrong = create_storage_provider(f"minio://{bucket}", {**s3_server.options(), "secret_key": "not-the-secret"})
    with pytest.raises(BadCredentials) as caught:
        calls(wrong)[call]()
    message = str(caught.value)
    assert "refused the credentials" in message and s3_server.access_key in message
    assert "\n" not in message
    assert isinstance(caught.value.__cause__, Exception)  # chained from minio's error


@pytest.mark.parametrize("call", ["stat", "read", "list", "write"])
def test_an_unknown_access_key_is_bad_credentials(s3_server, bucket, call):
    stranger = create_storage_provider(f"minio://{bucket}", {**s3_server.options(), "access_key": "NOSUCHKEY"})
    with pytest.raises(BadCredentials, match="NOSUCHKEY"):
        calls(stranger)[call]()


@pytest.mark.parametrize("call", ["stat", "metadata", "read", "list", "write"])
def test_another_account_gets_access_denied(s3_server, bucket, call):
    s3_server.add_user("FACTFLOWOTHER", "other-account-secret")
    other = create_storage_provider(f"minio://{bucket}", {**s3_server.options(), "access_key": "FACTFLOWOTHER",
                                                         "secret_key": "other-account-secret"})
    with pytest.raises(AccessDenied, match=bucket):
        calls(other)[call]()


def test_missing_keys_are_not_found_with_the_key_in_the_message(s3_server, bucket):
    provider = create_storage_provider(f"minio://{bucket}", s3_server.options())
    for call in (provider.read, provider.stat, provider.metadata, provider.open):
        with pytest.raises(NotFound, match="'absent/key'"):
            call("absent/key")


def test_every_table_entry_is_a_project_error():
    assert {"NoSuchKey", "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
            "InvalidRange", "SlowDown"} <= set(ERROR_TABLE)
    for error_class, template in ERROR_TABLE.values():
        assert issubclass(error_class, StorageError)
        assert "\n" not in template


def test_a_bare_400_for_oversized_headers_is_translated(s3_server, bucket):
    # radosgw answers request headers past ~16 KiB with a bare 400, which minio-py raises
    # as InvalidResponseError, not S3Error. Other servers name the error: both translate.
    context = ErrorContext(s3_server.endpoint, bucket, s3_server.access_key)
    with pytest.raises(Exception) as caught:
        s3_server.client().put_object(bucket_name=bucket, object_name="huge-headers", data=io.BytesIO(b"x"),
                                      length=1, metadata={"x-amz-meta-pad": "p" * 20000})
    translated = context.translate(caught.value, "object 'huge-headers'")
    assert isinstance(translated, (BadRequest, TooLarge)), (caught.value, translated)
    if isinstance(caught.value, InvalidResponseError):
        assert "bare HTTP 400" in str(translated)


# -- unreachable endpoints ----------------------------------------------------------------


@pytest.fixture
def silent_endpoint():
    """A listener that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def closed_endpoint():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def run_in_subprocess(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("endpoint_fixture, reason", [("silent_endpoint", "no answer within"),
                                                      ("closed_endpoint", "connection refused")])
def test_an_unreachable_endpoint_fails_fast_with_unavailable(request, endpoint_fixture, reason):
    endpoint = request.getfixturevalue(endpoint_fixture)
    done = run_in_subprocess(
        "from factflow_storage import create_storage_provider\n"
        "from factflow_storage.errors import Unavailable\n"
        "import time\n"
        f"p = create_storage_provider('minio://some-bucket', {{'endpoint': {endpoint!r}, 'access_key': 'a', "
        "'secret_key': 'b'})\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    p.stat('k')\n"
        "except Unavailable as err:\n"
        "    print(f'{time.monotonic() - start:.2f}')\n"
        "    print(type(err).__name__, err)\n")
    assert done.returncode == 0, done.stderr
    took, message = done.stdout.split("\n", 1)
    assert float(took) < UNREACHABLE_BOUND, took
    assert message.startswith("Unavailable cannot reach S3 at " + endpoint)
    assert reason in message


def test_unavailable_is_a_connection_error():
    assert issubclass(Unavailable, ConnectionError)

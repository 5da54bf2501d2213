"""Whole-object reads on the provider's own kept-alive sockets (``s3_get``), against the
suite's real S3 server: one connection per thread across reads, the same bytes and
metadata as minio-py's path, and every failure still the provider's."""

from __future__ import annotations

import io
import os
import socket
import threading
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest
from tcp_counter import CountingRelay

from factflow_storage import create_storage_provider
from factflow_storage.errors import BadCredentials, NotFound, Unavailable
from factflow_storage.providers.s3_quick import signed_headers
from factflow_storage.zipformat.layout import sidecar_bytes


def _provider(s3_server, bucket: str, **options):
    return create_storage_provider(f"minio://{bucket}", {**s3_server.options(), **options})


def _through(relay: CountingRelay) -> str:
    return urlsplit(relay.url).netloc


def test_reads_in_one_thread_share_one_connection_and_match_minio_py(s3_server, bucket):
    writer = _provider(s3_server, bucket)
    payloads = {f"e/r/s/m{n:02d}": os.urandom(100 + 997 * n) for n in range(12)}
    for key, data in payloads.items():
        writer.write(key, data, {"n": len(data)})
    writer.write("e/r/s/big-metadata", b"x", {"note": "y" * 4000})  # a companion record
    writer._client.put_object(bucket_name=bucket, object_name="e/r/s/foreign", data=io.BytesIO(b"other tool"),
                              length=10, metadata={"origin": "aws-cli"})
    payloads.update({"e/r/s/big-metadata": b"x", "e/r/s/foreign": b"other tool"})
    relay = CountingRelay(s3_server.url)
    try:
        fast = _provider(s3_server, bucket, endpoint=_through(relay))
        slow = _provider(s3_server, bucket)
        slow._gets = None  # every read through minio-py
        for key, data in payloads.items():
            with fast.open(key) as got, slow.open(key) as expected:
                assert got.read() == data == expected.read()
                assert sidecar_bytes(got.metadata) == sidecar_bytes(expected.metadata)
                assert got.info == expected.info
        assert fast._gets.sent == len(payloads)
        # One socket for every read, and one minio-py connection for the companion record.
        assert relay.connections == 2
    finally:
        relay.close()


def test_a_connection_the_server_dropped_is_replaced(s3_server, bucket):
    _provider(s3_server, bucket).write("e/r/s/k", b"kept")
    relay = CountingRelay(s3_server.url, drop_first=1)
    try:
        provider = _provider(s3_server, bucket, endpoint=_through(relay))
        assert provider.read("e/r/s/k") == b"kept"  # its first connection cut: read through minio-py
        assert provider.read("e/r/s/k") == b"kept"
        relay.cut()  # the kept socket is now dead
        assert provider.read("e/r/s/k") == b"kept"
        assert provider._gets.enabled
    finally:
        relay.close()


def test_threads_keep_a_socket_each(s3_server, bucket):
    writer = _provider(s3_server, bucket)
    for n in range(8):
        writer.write(f"e/r/s/t{n}", str(n).encode() * 50)
    relay = CountingRelay(s3_server.url)
    try:
        provider = _provider(s3_server, bucket, endpoint=_through(relay))
        errors: list[BaseException] = []

        def reads(n: int) -> None:
            try:
                for _ in range(10):
                    assert provider.read(f"e/r/s/t{n}") == str(n).encode() * 50
            except BaseException as err:  # noqa: BLE001 - reported by the main thread
                errors.append(err)

        threads = [threading.Thread(target=reads, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert relay.connections == 4
    finally:
        relay.close()


def test_a_missing_object_and_a_refused_signature_are_the_providers_errors(s3_server, bucket):
    provider = _provider(s3_server, bucket)
    with pytest.raises(NotFound, match="no object 'e/r/s/none'"):
        provider.open("e/r/s/none")
    assert provider._gets.enabled
    provider.write("e/r/s/k", b"x")
    wrong = _provider(s3_server, bucket, secret_key="not-the-secret")
    with pytest.raises(BadCredentials):
        wrong.open("e/r/s/k")
    assert not wrong._gets.enabled  # later reads go straight through minio-py
    sent = wrong._gets.sent
    with pytest.raises(BadCredentials):
        wrong.open("e/r/s/k")
    assert wrong._gets.sent == sent


def test_an_endpoint_that_never_answers_is_unavailable(s3_server, bucket):
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        provider = _provider(s3_server, bucket, endpoint=endpoint)
        with pytest.raises(Unavailable, match=f"^cannot reach S3 at {endpoint}: no answer within 6 s$"):
            provider.open("e/r/s/k")
        assert provider._gets.sent == 1  # said by the first request, not again by minio-py's
    finally:
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.parametrize("path", ["/bucket/plain.bin", "/b/with%20space%2C%20comma%20%26%20plus%2B.txt",
                                  "/b/%C3%BCn%C3%AFc%C3%B6d%C3%A9/%E6%97%A5%E6%9C%AC.md"])
def test_the_signature_is_minio_pys(path):
    from minio.credentials import Credentials
    from minio.signer import sign_v4_s3

    moment = datetime(2013, 5, 24, tzinfo=timezone.utc)
    ours = signed_headers("GET", "127.0.0.1:9000", path, "AKIAIOSFODNN7EXAMPLE",
                          "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", now=moment)
    headers = {name: value for name, value in ours.items() if name != "authorization"}
    theirs = sign_v4_s3(method="GET", url=urlsplit("http://127.0.0.1:9000" + path), region="us-east-1",
                        headers=dict(headers),
                        credentials=Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                        content_sha256=headers["x-amz-content-sha256"], date=moment)
    assert ours["authorization"] == theirs["Authorization"]


def test_the_signature_matches_the_published_s3_example():
    """The GET Object example of AWS's "Signature Calculations for the Authorization
    Header" (S3 API reference): its credentials, date, headers and resulting signature."""
    from datetime import datetime, timezone

    headers = signed_headers("GET", "examplebucket.s3.amazonaws.com", "/test.txt", "AKIAIOSFODNN7EXAMPLE",
                             "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1",
                             now=datetime(2013, 5, 24, tzinfo=timezone.utc), extra={"range": "bytes=0-9"})
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    assert headers["range"] == "bytes=0-9" and headers["x-amz-date"] == "20130524T000000Z"


def test_a_body_read_after_it_broke_off_is_an_error_not_an_end():
    """A caller that catches the broken connection and reads on must not take the missing
    rest of the object for the end of the file."""
    import socket

    from factflow_storage.errors import Unavailable
    from factflow_storage.providers.s3_quick import SocketBody

    ours, theirs = socket.socketpair()
    body = SocketBody(ours, b"abc", 10, "127.0.0.1:9")
    assert body.read(2) == b"ab"
    theirs.close()
    with pytest.raises(Unavailable):
        body.read()
    with pytest.raises(Unavailable):
        body.read()

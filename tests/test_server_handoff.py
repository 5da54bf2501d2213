"""Large body pieces reach the socket without waitress copying them, and the bytes a
client gets are exactly the app's: chunked or with a length, mixed with small pieces,
cut at the declared length, or none at all for HEAD. Clients are curl and this
package's ``--api`` client (``ApiResponse.readinto``), over real loopback HTTP."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import subprocess
import tracemalloc
from collections.abc import Iterator

import pytest

from factflow_storage.client import ApiClient
from factflow_storage.errors import Unavailable
from factflow_storage.server.channel import gated_channel
from server_fixture import running_wsgi

MIB = 1024 * 1024
BIG = bytes(range(256)) * (8 * MIB // 256)  # one 8 MiB piece, made before any tracing
BIG_TWICE = 8


def _pieces(path: str) -> list[bytes]:
    if path == "/mixed":
        return [b"head", BIG[:3 * MIB + 5], b"x" * 100, BIG[7:MIB], b"tail"]
    if path == "/cut":
        return [BIG[:MIB], BIG[:MIB]]
    return [BIG] * BIG_TWICE


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/gzip":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Encoding", "gzip")])
        return [gzip.compress(BIG[:3 * MIB])]
    pieces = _pieces(path)
    headers = [("Content-Type", "application/octet-stream")]
    if environ.get("QUERY_STRING") == "sized":
        headers.append(("Content-Length", str(sum(map(len, pieces)))))
    elif environ.get("QUERY_STRING") == "short":
        headers.append(("Content-Length", str(MIB + 10)))
    start_response("200 OK", headers)

    def body() -> Iterator[bytes]:
        yield from pieces
        if path == "/cut":
            raise RuntimeError("the app fails mid-answer")
    return body()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_wsgi(app, channel_class=gated_channel(lambda method, path, environ: None)) as base:
        yield base


def curl(url: str, *args: str) -> tuple[bytes, str]:
    done = subprocess.run(["curl", "-sS", "-D", "/dev/stderr", *args, url], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr.decode("latin-1").lower()


@pytest.mark.parametrize("query", ["", "sized"])
def test_a_large_answer_is_sent_without_a_copy_of_its_pieces(url, query, tmp_path):
    """waitress used to frame each chunk by concatenation and copy it into its output
    buffer: memory traced while 64 MiB go out in 8 MiB pieces peaked past a piece."""
    target = tmp_path / "body"
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        _, head = curl(f"{url}/big?{query}", "-o", str(target))
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    digest = hashlib.sha256()
    with open(target, "rb") as body:
        while chunk := body.read(MIB):
            digest.update(chunk)
    assert digest.digest() == hashlib.sha256(BIG * BIG_TWICE).digest()
    assert ("transfer-encoding: chunked" in head) == (query == "")
    assert peak < 2 * MIB, f"{peak} bytes allocated while sending"


@pytest.mark.parametrize("query", ["", "sized"])
def test_small_and_large_pieces_arrive_in_order(url, query):
    body, _ = curl(f"{url}/mixed?{query}")
    assert body == b"".join(_pieces("/mixed"))


def test_an_answer_longer_than_its_length_is_cut_at_the_length(url):
    body, head = curl(f"{url}/cut?short")
    assert f"content-length: {MIB + 10}" in head
    assert body == (BIG[:MIB] + BIG[:MIB])[:MIB + 10]


def test_head_sends_no_body(url):
    body, head = curl(f"{url}/big?sized", "-I")
    assert f"content-length: {len(BIG) * BIG_TWICE}" in head
    assert body.startswith(b"HTTP/1.1 200") and body.endswith(b"\r\n\r\n")  # -I prints the head as the body


def test_the_client_fills_whole_buffers_across_transfer_chunks(url):
    client = ApiClient(url)
    with contextlib.closing(client.request("GET", "/mixed")) as response:
        buffer = bytearray(MIB)
        got = bytearray()
        counts = []
        while count := response.readinto(buffer):
            counts.append(count)
            got += buffer[:count]
    assert bytes(got) == b"".join(_pieces("/mixed"))
    assert all(count == MIB for count in counts[:-1])  # short only at the end
    client.close()


def test_a_chunked_answer_cut_off_reads_as_the_api_breaking_off(url):
    client = ApiClient(url)
    with contextlib.closing(client.request("GET", "/cut")) as response:
        buffer = bytearray(MIB)
        with pytest.raises(Unavailable, match="broke off"):
            while response.readinto(buffer):
                pass
    client.close()


def test_a_compressed_answer_is_read_decoded(url):
    """readinto goes around urllib3 only for bodies it would not decode."""
    client = ApiClient(url)
    with contextlib.closing(client.request("GET", "/gzip")) as response:
        buffer = bytearray(MIB)
        got = bytearray()
        while count := response.readinto(buffer):
            got += buffer[:count]
    assert bytes(got) == BIG[:3 * MIB]
    client.close()

"""Conditional writes: PUT with If-Match (compare-and-swap) and If-None-Match: * (create
only), over HTTP and from the CLI, on both providers; 412 with the current ETag when the
precondition fails, and atomic when writers race."""

from __future__ import annotations

import threading


from factflow_storage.providers.s3_transfer import PART_SIZE
from server_fixture import http_request, service, url

__all__ = ["service", "url"]  # fixtures: imported for pytest to find

OBJECTS = "/api/v1/storage/objects"



def _put(url: str, key: str, body: bytes, **headers: str):
    return http_request(url, "PUT", f"{OBJECTS}/{key}", body=body, headers=headers)


def _read(url: str, key: str) -> bytes:
    return http_request(url, "GET", f"{OBJECTS}/{key}").body


def test_if_none_match_star_creates_only(url):
    assert _put(url, "doc", b"first", **{"If-None-Match": "*"}).status == 201
    etag = http_request(url, "HEAD", f"{OBJECTS}/doc").headers["etag"]
    refused = _put(url, "doc", b"second", **{"If-None-Match": "*"})
    assert refused.status == 412 and refused.json()["error_code"] == "precondition_failed"
    assert refused.headers["etag"] == etag
    assert _read(url, "doc") == b"first"


def test_if_match_is_a_compare_and_swap(url):
    assert _put(url, "doc", b"v1").status == 201
    v1 = http_request(url, "HEAD", f"{OBJECTS}/doc").headers["etag"]
    assert _put(url, "doc", b"v2", **{"If-Match": v1}).status == 201
    v2 = http_request(url, "HEAD", f"{OBJECTS}/doc").headers["etag"]
    lost = _put(url, "doc", b"v3 from a stale copy", **{"If-Match": v1})
    assert lost.status == 412 and lost.headers["etag"] == v2 and v2.strip('"') in lost.json()["detail"]
    assert _read(url, "doc") == b"v2"
    weak = _put(url, "doc", b"v3", **{"If-Match": "W/" + v2})
    assert weak.status == 412  # If-Match compares strongly
    missing = _put(url, "nothing-here", b"x", **{"If-Match": v2})
    assert missing.status == 412 and "etag" not in missing.headers
    assert http_request(url, "GET", f"{OBJECTS}/nothing-here").status == 404
    assert _put(url, "doc", b"v3", **{"If-Match": "*"}).status == 201
    assert _put(url, "new", b"x", **{"If-Match": "*"}).status == 412
    assert _read(url, "doc") == b"v3"


def test_racing_compare_and_swaps_let_exactly_one_through(url):
    assert _put(url, "counter", b"0").status == 201
    etag = http_request(url, "HEAD", f"{OBJECTS}/counter").headers["etag"]
    statuses: list[int] = []
    start = threading.Barrier(8)

    def writer(number: int) -> None:
        start.wait()
        statuses.append(_put(url, "counter", str(number + 1).encode(), **{"If-Match": etag}).status)

    _race(writer)
    assert sorted(statuses) == [201] + [412] * 7
    assert _read(url, "counter") in {str(n).encode() for n in range(1, 9)}


def _race(writer, count: int = 8) -> None:
    """``writer(0..count-1)`` in threads at once (each waits on its own barrier first)."""
    threads = [threading.Thread(target=writer, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_racing_creates_let_exactly_one_through(url):
    statuses: list[int] = []
    start = threading.Barrier(8)

    def writer(number: int) -> None:
        start.wait()
        statuses.append(_put(url, "once", str(number).encode(), **{"If-None-Match": "*"}).status)

    _race(writer)
    assert sorted(statuses) == [201] + [412] * 7


def test_a_conditional_write_the_backend_cannot_check_is_refused_not_emulated(url, service, storage):
    """A streamed body past one part goes up as a multipart upload: conditional only where
    the S3 server checks the completion (radosgw does not), always on a filesystem."""
    body = b"m" * (PART_SIZE + 1)
    answer = _put(url, "big", body, **{"If-None-Match": "*"})
    checks_completion = storage.kind == "file" or service.provider._conditional.support().multipart
    if checks_completion:
        assert answer.status == 201
        assert _put(url, "big", body, **{"If-None-Match": "*"}).status == 412
    else:
        assert answer.status == 501 and answer.json()["error_code"] == "not_implemented"
        assert "multipart" in answer.json()["detail"]
        assert http_request(url, "HEAD", f"{OBJECTS}/big").status == 404


def test_cli_put_if_absent_and_if_match(modes):
    for env in (modes.direct_env, modes.api_env):
        key = "cas/" + ("direct" if env is modes.direct_env else "api")
        code, out, _ = modes.run(env, ["storage", "put", key, "--if-absent"], b"one")
        assert code == 0, out
        code, _, err = modes.run(env, ["storage", "put", key, "--if-absent"], b"two")
        assert code == 1 and err.decode().startswith("Error: ") and "already exists" in err.decode()
        checksum = modes.run(env, ["storage", "metadata", key, "-o", "json"])[1]
        tag = checksum.split(b'"checksum":"sha256:')[1].split(b'"')[0].decode()
        code, _, err = modes.run(env, ["storage", "put", key, "--if-match", "0" * 64], b"three")
        assert code == 1 and tag in err.decode() and len(err.decode().splitlines()) == 1
        code, _, _ = modes.run(env, ["storage", "put", key, "--if-match", f'"{tag}"'], b"four")
        assert code == 0
        assert modes.run(env, ["storage", "get", key])[1] == b"four"
        code, _, err = modes.run(env, ["storage", "put", key, "--if-match", tag, "--if-absent"], b"x")
        assert code == 2

"""The JSON API over a real waitress server, on every storage kind: listings, object
bytes with their headers and ranges, metadata, writes, deletes, executions, health."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlencode

import orjson
import pytest

from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

OBJECTS = "/api/v1/storage/objects"


@pytest.fixture
def served(storage):
    provider = storage.open()
    service = StorageService(provider)
    with running_server(service) as url:
        yield url, service
    provider.close()


def get(url: str, path: str, **params):
    return http_request(url, "GET", path + ("?" + urlencode(params) if params else ""))


def obj(key: str, safe: str = "/") -> str:
    return f"{OBJECTS}/{quote(key, safe=safe)}"


def seed(service: StorageService) -> list[str]:
    keys = []
    for route in ("r1", "r2"):
        for stage in ("s1", "s2"):
            for name, data in (("a.json", b'{"n": 1}'), ("b.md", b"# b\n"), ("c.bin", bytes(range(256)))):
                key = f"executions/e1/{route}/{stage}/{name}"
                service.put(key, data, {"adapter": route})
                keys.append(key)
    return sorted(keys)


def test_list_returns_rows_with_metadata_by_default(served):
    url, service = served
    keys = seed(service)
    reply = get(url, OBJECTS, prefix="executions/e1/")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    page = reply.json()
    assert set(page) == {"objects", "common_prefixes", "next_cursor"}
    assert [row["key"] for row in page["objects"]] == keys
    row = page["objects"][0]
    assert set(row) == {"key", "size", "last_modified", "content_type", "metadata"}
    assert row["content_type"] == "application/json" and row["metadata"]["adapter"] == "r1"
    assert page["common_prefixes"] == [] and page["next_cursor"] is None


def test_list_without_metadata_has_listing_fields_only(served):
    url, service = served
    seed(service)
    rows = get(url, OBJECTS, prefix="executions/e1/r1/s1/", include_metadata="false").json()["objects"]
    assert [set(row) for row in rows] == [{"key", "size", "last_modified"}] * 3
    assert rows[2]["size"] == 256 and datetime.fromisoformat(rows[2]["last_modified"].replace("Z", "+00:00"))


def test_list_filters_by_route_stage_and_extension(served):
    url, service = served
    seed(service)
    page = get(url, OBJECTS, prefix="executions/e1/", route_id="r2", stage="s1", extension="md,bin",
               include_metadata="false").json()
    assert [row["key"] for row in page["objects"]] == ["executions/e1/r2/s1/b.md", "executions/e1/r2/s1/c.bin"]


def test_list_with_delimiter_groups_prefixes(served):
    url, service = served
    seed(service)
    page = get(url, OBJECTS, prefix="executions/e1/", delimiter="/").json()
    assert page == {"objects": [], "common_prefixes": ["executions/e1/r1/", "executions/e1/r2/"],
                    "next_cursor": None}


def test_list_pages_with_cursor_and_offset(served):
    url, service = served
    keys = seed(service)
    seen, cursor = [], None
    while True:
        params = {"limit": 5, "include_metadata": "false"} | ({"cursor": cursor} if cursor else {})
        page = get(url, OBJECTS, **params).json()
        seen += [row["key"] for row in page["objects"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == keys
    page = get(url, OBJECTS, offset=10, limit=3, include_metadata="false").json()
    assert [row["key"] for row in page["objects"]] == keys[10:12]


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"offset": "-1"},
                                    {"cursor": "gA"}, {"cursor": "GA"}, {"delimiter": "|"}, {"include_metadata": "maybe"},
                                    {"prefix": "a/../b"}, {"route_id": "x/y", "prefix": "executions/e1/"}])
def test_list_refuses_bad_parameters(served, params):
    reply = get(served[0], OBJECTS, **params)
    assert reply.status == 400
    assert set(reply.json()) == {"detail", "error_code", "timestamp"}


def test_object_bytes_and_headers(served):
    url, service = served
    data = bytes(range(256)) * 10
    stored = service.put("dir/blob.bin", data, None, content_type="application/x-thing")
    reply = get(url, obj("dir/blob.bin"))
    assert reply.status == 200 and reply.body == data
    assert reply.headers["content-type"] == "application/x-thing"
    assert reply.headers["content-length"] == str(len(data))
    assert reply.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert stored["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert parsedate_to_datetime(reply.headers["last-modified"]).tzinfo is not None
    assert reply.headers["accept-ranges"] == "bytes"


def test_head_gives_the_headers_without_bytes(served):
    url, service = served
    service.put("h/x.txt", b"hello world")
    reply = http_request(url, "HEAD", obj("h/x.txt"))
    assert reply.status == 200 and reply.body == b""
    assert reply.headers["content-length"] == "11"
    assert reply.headers["etag"] == f'"{hashlib.sha256(b"hello world").hexdigest()}"'
    assert http_request(url, "HEAD", obj("h/missing")).status == 404


@pytest.mark.parametrize("header, status, body, content_range", [
    ("bytes=2-5", 206, b"2345", "bytes 2-5/10"),
    ("bytes=7-", 206, b"789", "bytes 7-9/10"),
    ("bytes=-3", 206, b"789", "bytes 7-9/10"),
    ("bytes=-30", 206, b"0123456789", "bytes 0-9/10"),
    ("bytes=8-100", 206, b"89", "bytes 8-9/10"),
    ("bytes=0-0", 206, b"0", "bytes 0-0/10"),
    ("bytes=1-2,4-5", 200, b"0123456789", None),  # several ranges: served whole
    ("bytes=5-2", 200, b"0123456789", None),  # invalid: ignored
    ("items=0-1", 200, b"0123456789", None),
])
def test_range_reads(served, header, status, body, content_range):
    url, service = served
    service.put("r/digits.txt", b"0123456789")
    reply = http_request(url, "GET", obj("r/digits.txt"), headers={"Range": header})
    assert (reply.status, reply.body) == (status, body)
    assert reply.headers.get("content-range") == content_range
    assert reply.headers["content-length"] == str(len(body))


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=99-120", "bytes=-0"])
def test_unsatisfiable_range_is_416(served, header):
    url, service = served
    service.put("r/digits.txt", b"0123456789")
    reply = http_request(url, "GET", obj("r/digits.txt"), headers={"Range": header})
    assert reply.status == 416
    assert reply.json()["error_code"] == "range_not_satisfiable"
    assert reply.headers["content-range"] == "bytes */10"


def test_if_none_match_gives_304(served):
    url, service = served
    service.put("c/page.html", b"<p>hi</p>")
    etag = get(url, obj("c/page.html")).headers["etag"]
    for header in (etag, f'W/{etag}', f'"other", {etag}', "*"):
        reply = http_request(url, "GET", obj("c/page.html"), headers={"If-None-Match": header})
        assert (reply.status, reply.body) == (304, b"")
        assert reply.headers["etag"] == etag
    reply = http_request(url, "GET", obj("c/page.html"), headers={"If-None-Match": '"stale"'})
    assert (reply.status, reply.body) == (200, b"<p>hi</p>")


def test_empty_object(served):
    url, service = served
    service.put("e/empty", b"")
    reply = get(url, obj("e/empty"))
    assert (reply.status, reply.body, reply.headers["content-length"]) == (200, b"", "0")


def test_metadata_route_and_view(served):
    url, service = served
    blob = service.put("m/doc.json", b"{}", {"lineage": ["x"], "custom": {"deep": [1, 2]}})
    assert get(url, obj("m/doc.json") + "/metadata").json() == blob
    assert get(url, obj("m/doc.json"), view="metadata").json() == blob
    missing = get(url, obj("m/nothing") + "/metadata")
    assert missing.status == 404 and missing.json()["error_code"] == "not_found"
    assert get(url, obj("m/doc.json"), view="other").status == 400


def test_object_named_metadata_wins_over_the_metadata_route(served):
    url, service = served
    parent = service.put("k/report", b"parent bytes")
    child = service.put("k2/report/metadata", b"child bytes", content_type="text/plain")
    # '/metadata' after an existing object's key: that object's metadata.
    assert get(url, obj("k/report") + "/metadata").json() == parent
    # A key that itself ends in '/metadata': the object wins...
    reply = get(url, obj("k2/report/metadata"))
    assert (reply.status, reply.body) == (200, b"child bytes")
    # ...and its metadata stays reachable without ambiguity.
    assert get(url, obj("k2/report/metadata"), view="metadata").json() == child
    assert get(url, obj("k2/report/metadata") + "/metadata").json() == child
    # view=content never falls back to a blob.
    assert get(url, obj("k/report/metadata"), view="content").status == 404


def test_put_with_metadata_header(served):
    url, service = served
    meta = {"adapter": "uploader", "note": "ünïcödé ✓", "checksum": "sha256:forged", "content_length": 1}
    reply = http_request(url, "PUT", obj("up/file.txt"), body=b"uploaded",
                         headers={"Content-Type": "text/plain; charset=utf-8",
                                  "X-Factflow-Metadata": orjson.dumps(meta)})
    assert reply.status == 201
    blob = reply.json()
    assert blob["note"] == "ünïcödé ✓" and blob["adapter"] == "uploader"
    assert blob["content_type"] == "text/plain; charset=utf-8"
    assert blob["content_length"] == 8 and blob["checksum"] == "sha256:" + hashlib.sha256(b"uploaded").hexdigest()
    assert service.metadata("up/file.txt") == blob
    assert get(url, obj("up/file.txt")).body == b"uploaded"


def test_put_streams_a_chunked_body(served):
    url, service = served
    chunks = [bytes([n]) * 100_000 for n in range(20)]
    # http.client sends an iterable of unknown length with Transfer-Encoding: chunked.
    reply = http_request(url, "PUT", obj("up/chunked.bin"), body=iter(chunks))
    assert reply.status == 201 and reply.json()["content_length"] == 2_000_000
    assert get(url, obj("up/chunked.bin")).body == b"".join(chunks)


@pytest.mark.parametrize("header", [b"{not json", b"[1, 2]", b'"text"'])
def test_put_refuses_bad_metadata(served, header):
    url, service = served
    reply = http_request(url, "PUT", obj("up/x"), body=b"x", headers={"X-Factflow-Metadata": header})
    assert reply.status == 400 and "X-Factflow-Metadata" in reply.json()["detail"]
    assert get(url, obj("up/x")).status == 404


def test_delete(served):
    url, service = served
    service.put("d/x", b"x")
    assert http_request(url, "DELETE", obj("d/x")).status == 204
    assert get(url, obj("d/x")).status == 404
    assert http_request(url, "DELETE", obj("d/x")).status == 204  # missing: no error, as on S3


@pytest.mark.parametrize("key", ["sp ace/with space.txt", "üñí/cødé/ファイル.md", "odd/100%+?#&=;,.txt",
                                 "a/b/c/d/e/f/deep", "emoji/😀"])
def test_keys_round_trip_percent_encoded(served, key):
    url, service = served
    # Written with every '/' encoded, read with them plain: the same key either way.
    assert http_request(url, "PUT", obj(key, safe=""), body=key.encode()).status == 201
    assert get(url, obj(key)).body == key.encode()
    assert get(url, obj(key, safe="")).body == key.encode()
    assert get(url, obj(key), view="metadata").json()["key"] == key
    rows = get(url, OBJECTS, prefix=key, include_metadata="false").json()["objects"]
    assert [row["key"] for row in rows] == [key]
    assert service.metadata(key)["key"] == key


def test_executions_over_http(served):
    url, service = served
    started = http_request(url, "PUT", "/api/v1/executions/run-1", body=b'{"status": "running"}')
    assert started.status == 200 and started.json()["status"] == "running"
    service.put("executions/run-1/r/s/m1", b"x")
    http_request(url, "PUT", "/api/v1/executions/run-2", body=b'{"status": "running"}')
    finished = http_request(url, "PUT", "/api/v1/executions/run-1", body=b'{"status": "failed"}').json()
    assert finished["status"] == "failed" and finished["object_count"] == 1
    assert get(url, "/api/v1/executions/run-1").json() == finished
    listed = get(url, "/api/v1/executions").json()
    assert listed == service.executions() and listed["next_cursor"] is None
    assert {record["execution_id"] for record in listed["executions"]} == {"run-1", "run-2"}
    assert get(url, "/api/v1/executions/nope").status == 404
    for body in (b'{"status": "exploded"}', b"{}", b"not json", b'["running"]'):
        assert http_request(url, "PUT", "/api/v1/executions/run-3", body=body).status == 400
    assert get(url, "/api/v1/executions/run-3").status == 404


def test_health(served):
    url, service = served
    reply = get(url, "/api/v1/health")
    assert reply.status == 200 and reply.json()["status"] == "ok"


def test_file_storage_conflict_is_409(file_storage):
    with file_storage.open() as provider, running_server(StorageService(provider)) as url:
        assert http_request(url, "PUT", obj("a/b"), body=b"object").status == 201
        reply = http_request(url, "PUT", obj("a/b/c"), body=b"beside")
        assert reply.status == 409 and reply.json()["error_code"] == "conflict"
        assert get(url, obj("a/b")).body == b"object"


def test_body_over_the_limit_is_413(file_storage):
    with file_storage.open() as provider, running_server(StorageService(provider), max_body=1000) as url:
        reply = http_request(url, "PUT", obj("big/x"), body=b"x" * 1001)
        assert reply.status == 413 and reply.json()["error_code"] == "too_large"
        assert get(url, obj("big/x")).status == 404
        assert http_request(url, "PUT", obj("big/x"), body=b"x" * 1000).status == 201


def test_large_object_streams_whole_and_in_ranges(served):
    url, service = served
    data = os.urandom(3 * 1024 * 1024 + 17)
    service.put("big/blob.bin", data)
    assert get(url, obj("big/blob.bin")).body == data
    start, end = 1024 * 1024 - 5, 2 * 1024 * 1024 + 5  # across the server's 1 MiB chunks
    reply = http_request(url, "GET", obj("big/blob.bin"), headers={"Range": f"bytes={start}-{end}"})
    assert reply.status == 206 and reply.body == data[start:end + 1]

"""Exact HTTP: RFC 9110 conditionals and If-Range on object reads, ETags on metadata
views, 411 for a body without a length, and a precise 4xx for each malformed request."""

from __future__ import annotations

import socket
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

import orjson
import pytest

from server_fixture import http_request, service, url

__all__ = ["service", "url"]  # fixtures: imported for pytest to find

OBJECTS = "/api/v1/storage/objects"



def test_if_range_with_an_old_etag_sends_the_whole_new_object(url, service):
    service.put("doc", b"A" * 100)
    old = http_request(url, "GET", f"{OBJECTS}/doc", headers={"Range": "bytes=0-49"})
    assert old.status == 206
    service.put("doc", b"B" * 120)
    resumed = http_request(url, "GET", f"{OBJECTS}/doc",
                           headers={"Range": "bytes=50-", "If-Range": old.headers["etag"]})
    assert resumed.status == 200 and resumed.body == b"B" * 120 and "content-range" not in resumed.headers
    current = http_request(url, "HEAD", f"{OBJECTS}/doc").headers
    fresh = http_request(url, "GET", f"{OBJECTS}/doc", headers={"Range": "bytes=100-", "If-Range": current["etag"]})
    assert fresh.status == 206 and fresh.body == b"B" * 20
    weak = http_request(url, "GET", f"{OBJECTS}/doc", headers={"Range": "bytes=100-",
                                                               "If-Range": "W/" + current["etag"]})
    assert weak.status == 200 and len(weak.body) == 120  # If-Range needs a strong match


def test_if_range_with_a_date_never_splices_two_versions_of_one_second(url, service):
    # Two versions written within one second share their Last-Modified: a date cannot
    # tell them apart (RFC 9110 8.8.2.2), so it is weak and the whole object is sent.
    service.put("doc", b"A" * 100)
    old = http_request(url, "GET", f"{OBJECTS}/doc", headers={"Range": "bytes=0-49"})
    assert old.status == 206 and old.body == b"A" * 50
    service.put("doc", b"B" * 100)
    resumed = http_request(url, "GET", f"{OBJECTS}/doc",
                           headers={"Range": "bytes=50-", "If-Range": old.headers["last-modified"]})
    assert resumed.status == 200 and resumed.body == b"B" * 100 and "content-range" not in resumed.headers
    current = http_request(url, "HEAD", f"{OBJECTS}/doc").headers
    again = http_request(url, "GET", f"{OBJECTS}/doc",
                         headers={"Range": "bytes=50-", "If-Range": current["last-modified"]})
    assert again.status == 200 and again.body == b"B" * 100


def test_if_match_and_if_unmodified_since_give_412(url, service):
    service.put("doc", b"v1")
    head = http_request(url, "HEAD", f"{OBJECTS}/doc").headers
    modified = parsedate_to_datetime(head["last-modified"])
    assert http_request(url, "GET", f"{OBJECTS}/doc", headers={"If-Match": head["etag"]}).status == 200
    assert http_request(url, "GET", f"{OBJECTS}/doc", headers={"If-Match": "*"}).status == 200
    refused = http_request(url, "GET", f"{OBJECTS}/doc", headers={"If-Match": '"other"'})
    assert refused.status == 412 and refused.json()["error_code"] == "precondition_failed"
    before = format_datetime(modified.replace(year=modified.year - 1), usegmt=True)
    assert http_request(url, "GET", f"{OBJECTS}/doc", headers={"If-Unmodified-Since": before}).status == 412
    assert http_request(url, "GET", f"{OBJECTS}/doc",
                        headers={"If-Unmodified-Since": head["last-modified"]}).status == 200
    # If-Match decides alone when both are sent (RFC 9110 13.2.2)
    assert http_request(url, "GET", f"{OBJECTS}/doc",
                        headers={"If-Match": head["etag"], "If-Unmodified-Since": before}).status == 200


def test_if_modified_since_gives_304_with_its_validators(url, service):
    service.put("doc", b"v1")
    head = http_request(url, "HEAD", f"{OBJECTS}/doc").headers
    for headers in ({"If-Modified-Since": head["last-modified"]}, {"If-None-Match": head["etag"]},
                    {"If-None-Match": f'"x", W/{head["etag"]}'}):
        reply = http_request(url, "GET", f"{OBJECTS}/doc", headers=headers)
        assert reply.status == 304 and reply.body == b""
        assert reply.headers["etag"] == head["etag"] and reply.headers["last-modified"] == head["last-modified"]
    later = parsedate_to_datetime(head["last-modified"])
    earlier = format_datetime(later.replace(year=later.year - 1), usegmt=True)
    assert http_request(url, "GET", f"{OBJECTS}/doc", headers={"If-Modified-Since": earlier}).status == 200
    # If-None-Match decides alone: a stale tag with a fresh date is a full answer
    assert http_request(url, "GET", f"{OBJECTS}/doc", headers={
        "If-None-Match": '"stale"', "If-Modified-Since": head["last-modified"]}).status == 200
    assert http_request(url, "GET", f"{OBJECTS}/doc",
                        headers={"If-Modified-Since": "not a date"}).status == 200


def test_metadata_views_have_an_etag_and_revalidate(url, service):
    service.put("doc", b"v1", {"adapter": "a"})
    for path in (f"{OBJECTS}/doc/metadata", f"{OBJECTS}/doc?view=metadata"):
        first = http_request(url, "GET", path)
        assert first.status == 200 and first.headers["etag"].startswith('"')
        again = http_request(url, "GET", path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status == 304 and again.headers["etag"] == first.headers["etag"]
    tag = http_request(url, "GET", f"{OBJECTS}/doc/metadata").headers["etag"]
    service.put("doc", b"v2", {"adapter": "b"})
    changed = http_request(url, "GET", f"{OBJECTS}/doc/metadata", headers={"If-None-Match": tag})
    assert changed.status == 200 and changed.json()["adapter"] == "b" and changed.headers["etag"] != tag


def _raw(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)  # no half-close: waitress reads ahead and takes EOF for a client gone
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_put_without_a_length_is_411_and_stores_nothing(url, service):
    answer = _raw(url, b"PUT /api/v1/storage/objects/nolength HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\nbody bytes")
    assert answer.startswith(b"HTTP/1.0 411") or answer.startswith(b"HTTP/1.1 411"), answer[:200]
    assert orjson.loads(answer.partition(b"\r\n\r\n")[2])["error_code"] == "length_required"
    assert not service.provider.exists("nolength")
    chunked = _raw(url, b"PUT /api/v1/storage/objects/chunked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 201"), chunked[:200]
    assert service.open("chunked").read() == b"hello"


@pytest.mark.parametrize("method, path, headers, status, code", [
    ("DELETE", "/api/v1/content/archive/prepare", {}, 405, "method_not_allowed"),
    ("PUT", OBJECTS + "/doc/metadata", {}, 405, "method_not_allowed"),
    ("GET", OBJECTS + "?cursor=!!!", {}, 400, "bad_request"),
    ("GET", OBJECTS + "?cursor=a%20b", {}, 400, "bad_request"),
    ("GET", OBJECTS + "?offset=" + "1" + "0" * 30, {}, 400, "bad_request"),
    ("GET", OBJECTS + "?offset=-1", {}, 400, "bad_request"),
    ("GET", OBJECTS + "/doc", {"Range": "bytes=" + "9" * 5000 + "-"}, 416, "range_not_satisfiable"),
    ("PUT", OBJECTS + "/typed", {"Content-Type": "text/pl\u00e4in".encode()}, 400, "bad_request"),
    ("PUT", OBJECTS + "/typed", {"Content-Type": "no slash"}, 400, "bad_request"),
])
def test_malformed_requests_get_a_precise_4xx(url, service, method, path, headers, status, code):
    service.put("doc", b"0123456789")
    reply = http_request(url, method, path, headers=headers, body=b"x" if method == "PUT" else None)
    assert reply.status == status, reply.body
    assert reply.json()["error_code"] == code
    if status == 405:
        assert reply.headers["allow"]
    assert service.open("doc").read() == b"0123456789"
    assert not service.provider.exists("doc/metadata") and not service.provider.exists("typed")


def test_a_huge_range_end_is_clamped_to_the_object(url, service):
    service.put("doc", b"0123456789")
    reply = http_request(url, "GET", f"{OBJECTS}/doc", headers={"Range": "bytes=2-" + "9" * 5000})
    assert reply.status == 206 and reply.body == b"23456789"


def test_a_valid_cursor_still_pages(url, service):
    for index in range(5):
        service.put(f"p/{index}", b"x")
    first = http_request(url, "GET", f"{OBJECTS}?prefix=p/&limit=2").json()
    second = http_request(url, "GET", f"{OBJECTS}?prefix=p/&limit=2&cursor={first['next_cursor']}").json()
    assert [row["key"] for row in second["objects"]] == ["p/2", "p/3"]


def test_a_key_ending_in_metadata_is_an_ordinary_key_where_no_parent_object_exists(url, service):
    # Only where GET answers the parent's metadata is a PUT there refused; elsewhere the
    # key is writable over HTTP as it is in direct mode.
    reply = http_request(url, "PUT", OBJECTS + "/run/r/s/metadata", body=b'{"a": 1}',
                         headers={"Content-Type": "application/json"})
    assert reply.status == 201, reply.body
    assert service.open("run/r/s/metadata").read() == b'{"a": 1}'
    again = http_request(url, "PUT", OBJECTS + "/run/r/s/metadata", body=b'{"a": 2}',
                         headers={"Content-Type": "application/json"})
    assert again.status == 201 and service.open("run/r/s/metadata").read() == b'{"a": 2}'


def test_a_made_up_cursor_is_a_400_on_every_provider(url, service):
    # "GA" decodes to a control character, which no key holds and S3's XML cannot carry.
    service.put("p/0", b"x")
    reply = http_request(url, "GET", f"{OBJECTS}?prefix=p/&cursor=GA")
    assert reply.status == 400 and reply.json()["error_code"] == "bad_request", reply.body


def test_executions_deleted_together_may_have_non_ascii_ids(url, service):
    # Query values are UTF-8 (bottle hands them over as latin-1): "#捑" is one valid id.
    for execution_id in ("A", "#捑"):
        service.put(f"executions/{execution_id}/r/s/m", b"x")
        service.set_execution_status(execution_id, "completed")
    reply = http_request(url, "DELETE", "/api/v1/executions/A?with=%23%E6%8D%91")
    assert reply.status == 200, reply.body
    assert sorted(row["execution_id"] for row in reply.json()["executions"]) == ["#捑", "A"]

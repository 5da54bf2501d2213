"""What a browser can do with the server: stored bytes never run on its origin, pages
of other origins cannot change anything, and CORS is opt-in and answers preflights."""

from __future__ import annotations

import pytest

from server_fixture import http_request, running_server

OBJECTS = "/api/v1/storage/objects"
PREPARE = "/api/v1/content/archive/prepare"
EVIL = "http://evil.example"
FRIEND = "http://localhost:3000"


@pytest.fixture
def url(service):
    service.put("executions/e1/r/s/a.txt", b"a")
    service.set_execution_status("e1", "completed")
    with running_server(service) as base:
        yield base


@pytest.fixture
def friendly(service):
    with running_server(service, cors_origins=[FRIEND]) as base:
        yield base


def assert_refused(reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error_code"] == code


@pytest.mark.parametrize("content_type, disposition", [
    ("text/html", "attachment"), ("image/svg+xml", "attachment"), ("application/xhtml+xml", "attachment"),
    ("text/xml", "attachment"), ("application/javascript", "attachment"), ("text/javascript", "attachment"),
    ("application/json", None), ("image/png", None), ("text/plain", None),
])
def test_every_object_read_is_sandboxed_and_active_types_download(url, service, content_type, disposition):
    service.put("page", b"<script>fetch('/api/v1/storage/objects')</script>", content_type=content_type)
    for method in ("GET", "HEAD"):
        for path in (f"{OBJECTS}/page", f"{OBJECTS}/page?view=content"):
            reply = http_request(url, method, path)
            assert reply.status == 200
            policy = reply.headers["content-security-policy"]
            assert "sandbox" in policy and "default-src 'none'" in policy
            assert reply.headers["x-content-type-options"] == "nosniff"
            assert reply.headers.get("content-disposition") == disposition
    ranged = http_request(url, "GET", f"{OBJECTS}/page", headers={"Range": "bytes=0-3"})
    assert ranged.status == 206 and "sandbox" in ranged.headers["content-security-policy"]


def test_metadata_views_are_sandboxed_too(url, service):
    service.put("page.html", b"<b>x</b>", content_type="text/html")
    for path in (f"{OBJECTS}/page.html/metadata", f"{OBJECTS}/page.html?view=metadata"):
        reply = http_request(url, "GET", path)
        assert reply.status == 200 and reply.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in reply.headers["content-security-policy"]


def test_text_without_a_charset_is_declared_utf8(url, service):
    service.put("umlaut.txt", "grüße".encode(), content_type="text/plain")
    service.put("latin.txt", "grüße".encode("latin-1"), content_type="text/plain; charset=iso-8859-1")
    reply = http_request(url, "GET", f"{OBJECTS}/umlaut.txt")
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.body.decode(reply.headers["content-type"].split("charset=")[1]) == "grüße"
    assert http_request(url, "GET", f"{OBJECTS}/latin.txt").headers["content-type"] == \
        "text/plain; charset=iso-8859-1"


@pytest.mark.parametrize("method, path, body, headers", [
    ("POST", PREPARE, b'{"execution_id": "e1"}', {"Content-Type": "text/plain"}),
    ("POST", PREPARE, b'{"execution_id": "e1"}', {"Content-Type": "application/json"}),
    ("PUT", OBJECTS + "/planted", b"x", {"Content-Type": "text/plain"}),
    ("DELETE", OBJECTS + "/executions/e1/r/s/a.txt", None, {}),
    ("PUT", "/api/v1/executions/e2", b'{"status": "running"}', {"Content-Type": "application/json"}),
])
@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:1"])
def test_state_changing_requests_from_foreign_origins_are_refused(url, service, method, path, body, headers,
                                                                 origin):
    reply = http_request(url, method, path, body=body, headers={**headers, "Origin": origin})
    assert_refused(reply, 403, "access_denied")
    assert service.provider.exists("executions/e1/r/s/a.txt") and not service.provider.exists("planted")
    assert not list(service.provider.list_records("jobs/"))


def test_the_servers_own_origin_and_allowed_ones_may_write(friendly, service):
    url = friendly
    for origin in (url, FRIEND):
        reply = http_request(url, "PUT", OBJECTS + "/ok", body=b"x", headers={"Origin": origin})
        assert reply.status == 201, reply.body
    assert http_request(url, "PUT", OBJECTS + "/ok", body=b"y").status == 201  # no Origin: not a page


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_json_endpoints_refuse_bodies_that_claim_another_type(url, service, content_type):
    for path in (PREPARE, "/api/v1/executions/e3"):
        method = "POST" if path == PREPARE else "PUT"
        body = b'{"execution_id": "e1"}' if path == PREPARE else b'{"status": "running"}'
        reply = http_request(url, method, path, body=body, headers={"Content-Type": content_type})
        assert_refused(reply, 415, "unsupported_media_type")
    assert not list(service.provider.list_records("jobs/"))
    assert http_request(url, "GET", "/api/v1/executions/e3").status == 404


def test_cors_preflight_and_headers_only_for_allowed_origins(friendly):
    url = friendly
    ask = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
    allowed = http_request(url, "OPTIONS", OBJECTS + "/x", headers={"Origin": FRIEND, **ask})
    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == FRIEND
    assert "PUT" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "Origin" in allowed.headers["vary"]
    refused = http_request(url, "OPTIONS", OBJECTS + "/x", headers={"Origin": EVIL, **ask})
    assert refused.status == 403 and "access-control-allow-origin" not in refused.headers
    read = http_request(url, "GET", OBJECTS, headers={"Origin": FRIEND})
    assert read.headers["access-control-allow-origin"] == FRIEND and "ETag" in \
        read.headers["access-control-expose-headers"]
    assert "access-control-allow-origin" not in http_request(url, "GET", OBJECTS, headers={"Origin": EVIL}).headers


def test_without_the_setting_no_origin_is_allowed(service):
    with running_server(service) as base:
        ask = {"Origin": FRIEND, "Access-Control-Request-Method": "PUT"}
        assert http_request(base, "OPTIONS", OBJECTS + "/x", headers=ask).status == 403
        reply = http_request(base, "PUT", OBJECTS + "/x", body=b"x", headers={"Origin": FRIEND})
        assert_refused(reply, 403, "access_denied")


def test_the_cors_setting_is_parsed_strictly():
    from factflow_storage.errors import ConfigError
    from factflow_storage.server.origin import parse_origins

    assert parse_origins(" http://A.example:8080 , https://b.example/") == \
        frozenset({"http://a.example:8080", "https://b.example"})
    for bad in ("a.example", "ftp://a.example", "http://a.example/path", "*"):
        with pytest.raises(ConfigError):
            parse_origins(bad)

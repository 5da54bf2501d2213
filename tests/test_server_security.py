"""Who may reach the server, what it refuses, and that errors are JSON, never HTML."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import pytest

from factflow_storage import create_storage_provider
from factflow_storage.client import RemoteService
from factflow_storage.errors import ConfigError, Unauthorized
from factflow_storage.server.app import create_server
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

TOKEN = "s3cr3t-token-for-tests"
OBJECTS = "/api/v1/storage/objects"


def assert_error(reply, status: int, error_code: str | None = None) -> dict:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == {"detail", "error_code", "timestamp"}
    assert datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    assert b"<html" not in reply.body.lower() and b"Traceback" not in reply.body
    if error_code:
        assert body["error_code"] == error_code
    return body


@pytest.fixture
def guarded(service):
    service.put("a/b.txt", b"secret bytes")
    with running_server(service, token=TOKEN) as url:
        yield url


@pytest.mark.parametrize("method, path", [
    ("GET", OBJECTS), ("GET", OBJECTS + "/a/b.txt"), ("HEAD", OBJECTS + "/a/b.txt"),
    ("GET", OBJECTS + "/a/b.txt/metadata"), ("PUT", OBJECTS + "/a/new"), ("DELETE", OBJECTS + "/a/b.txt"),
    ("GET", "/api/v1/executions"), ("PUT", "/api/v1/executions/x"), ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/no-such-route"), ("HEAD", "/api/v1/health"),
])
def test_every_route_but_health_needs_the_token(guarded, service, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": "Bearer"}, {"Authorization": f"Bearer {TOKEN}x"}):
        reply = http_request(guarded, method, path, headers=headers, body=b"x" if method == "PUT" else None)
        assert reply.status == 401
        assert reply.headers["www-authenticate"].startswith("Bearer")
        if method != "HEAD":
            assert_error(reply, 401, "unauthorized")
    assert service.provider.read("a/b.txt") == b"secret bytes"
    assert not service.provider.exists("a/new")


def test_the_right_token_opens_every_route(guarded):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert http_request(guarded, "GET", OBJECTS + "/a/b.txt", headers=auth).body == b"secret bytes"
    assert http_request(guarded, "GET", "/api/v1/executions", headers=auth).status == 200
    assert_error(http_request(guarded, "GET", "/api/v1/no-such-route", headers=auth), 404, "not_found")


def test_health_needs_no_token_and_tells_strangers_only_the_status(guarded, service):
    assert http_request(guarded, "GET", "/api/v1/health").json() == {"status": "ok"}
    reply = http_request(guarded, "GET", "/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.json() == {"status": "ok", "storage": service.provider.uri}


def test_remote_service_with_a_wrong_token_fails_with_401(guarded):
    with pytest.raises(Unauthorized, match="invalid bearer token"):
        RemoteService(guarded, token="nope").browse("")
    assert RemoteService(guarded, token=TOKEN).browse("")["common_prefixes"] == ["a/"]


def test_without_a_token_only_loopback_host_names_are_served(service):
    with running_server(service) as url:
        port = url.rsplit(":", 1)[1]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
            assert http_request(url, "GET", OBJECTS, headers={"Host": host}).status == 200
        for host in (f"evil.example:{port}", "10.0.0.1", f"127.0.0.1.evil.example:{port}"):
            body = assert_error(http_request(url, "GET", OBJECTS, headers={"Host": host}), 403, "access_denied")
            assert "FACTFLOW_API_TOKEN" in body["detail"]


def test_with_a_token_any_host_name_is_served(guarded):
    reply = http_request(guarded, "GET", OBJECTS, headers={"Host": "storage.internal",
                                                           "Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "", "10.1.2.3", "example.com", "::"])
def test_binding_beyond_loopback_needs_a_token(service, host):
    with pytest.raises(ConfigError, match="FACTFLOW_API_TOKEN"):
        create_server(service, host, 0)


def test_serve_refuses_a_public_address_without_a_token(file_storage):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    result = subprocess.run([sys.executable, "-m", "factflow_storage", "serve", "--host", "0.0.0.0", "--port", "0",
                             "--storage", file_storage.uri], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "FACTFLOW_API_TOKEN" in result.stderr


TRAVERSALS = [
    "../escape.txt", "..%2fescape.txt", "..%2Fescape.txt", "%2e%2e/escape.txt", "%2E%2E%2Fescape.txt",
    "a/../../escape.txt", "a/%2e%2e/%2e%2e/escape.txt", "..%5cescape.txt", "a%5c..%5c..%5cescape.txt",
    "/escape.txt", "%2fescape.txt", "%2F%2E%2E%2Fescape.txt", "a%00.txt", "a/b%00/../../escape.txt",
    "..%c0%af..%c0%afescape.txt", "%c0%ae%c0%ae/escape.txt", "a//b", "./a", "a/.", "a%0a",
    "_factflow/executions/x.json", "a/x.meta.json",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_in_any_encoding_is_400_and_touches_nothing(tmp_path, path):
    outside = tmp_path / "escape.txt"
    outside.write_bytes(b"outside")
    with create_storage_provider(f"file://{tmp_path / 'storage'}") as provider, \
            running_server(StorageService(provider)) as url:
        provider.write("a/b.txt", b"inside")
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        for method in ("GET", "HEAD", "PUT", "DELETE"):
            for suffix in ("", "/metadata"):
                reply = http_request(url, method, f"{OBJECTS}/{path}{suffix}",
                                     body=b"evil" if method == "PUT" else None)
                assert reply.status == 400, (method, path, suffix, reply.status, reply.body)
                if method != "HEAD":
                    assert_error(reply, 400, "invalid_key")
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
        assert outside.read_bytes() == b"outside" and provider.read("a/b.txt") == b"inside"


@pytest.mark.parametrize("path", ["..", "%2e%2e", "..%2f..%2fx", "a%2fb", "a%00", "..%5cx", "%ff"])
def test_bad_execution_ids_are_400(service, path):
    with running_server(service) as url:
        assert_error(http_request(url, "GET", f"/api/v1/executions/{path}"), 400, "invalid_key")
        reply = http_request(url, "PUT", f"/api/v1/executions/{path}", body=b'{"status": "running"}')
        assert_error(reply, 400, "invalid_key")
    assert list(service.provider.list_records("executions/")) == []


def test_double_encoding_is_a_literal_key_inside_the_root(tmp_path, service):
    with running_server(service) as url:
        assert http_request(url, "PUT", f"{OBJECTS}/%252e%252e/x", body=b"literal").status == 201
    assert service.provider.read("%2e%2e/x") == b"literal"
    assert not (tmp_path / "x").exists()


def test_bottle_errors_are_json(service):
    with running_server(service) as url:
        assert_error(http_request(url, "GET", "/nope"), 404, "not_found")
        assert_error(http_request(url, "GET", "/api/v1/storage"), 404, "not_found")
        reply = http_request(url, "POST", OBJECTS + "/a/b")
        body = assert_error(reply, 405, "method_not_allowed")
        assert "POST" in body["detail"] and "PUT" in reply.headers["allow"]


class _Broken(StorageService):
    def executions(self):
        raise RuntimeError("internal detail that must not leak")


def test_unexpected_errors_are_500_json_without_details(file_storage):
    with file_storage.open() as provider, running_server(_Broken(provider)) as url:
        reply = http_request(url, "GET", "/api/v1/executions")
        body = assert_error(reply, 500, "internal_error")
        assert "internal detail" not in reply.body.decode()
        assert body["detail"] == "internal server error"

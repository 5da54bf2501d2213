"""Signing out of the console kills that session: at once on the replica that signed it
out, within seconds on another replica sharing the storage, and after a restart; the
other sessions of the same token live on."""

from __future__ import annotations

import time
from contextlib import ExitStack

import orjson

from factflow_storage.server.revocations import REFRESH_SECONDS
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

TOKEN = "logout-test-token"
SESSION = "/api/v1/session"
PROTECTED = "/api/v1/storage/objects?prefix=&limit=1"


def _login(url: str) -> str:
    reply = http_request(url, "POST", SESSION, body=orjson.dumps({"token": TOKEN}),
                         headers={"Content-Type": "application/json"})
    assert reply.status == 200
    return reply.headers["set-cookie"].split(";", 1)[0]


def _status(url: str, cookie: str, method: str = "GET", path: str = PROTECTED) -> int:
    return http_request(url, method, path, headers={"Cookie": cookie}).status


def test_a_signed_out_session_is_dead_everywhere_and_the_others_live(storage):
    with ExitStack() as stack:
        replicas = []
        for _ in range(2):
            provider = stack.enter_context(storage.open())
            replicas.append(stack.enter_context(running_server(StorageService(provider), token=TOKEN)))
        here, there = replicas
        leaving, staying = _login(here), _login(here)
        assert leaving != staying
        for url in replicas:
            assert _status(url, leaving) == _status(url, staying) == 200
        assert _status(here, leaving, "DELETE", SESSION) == 200
        assert _status(here, leaving) == 401  # at once on this replica
        deadline = time.monotonic() + 2 * REFRESH_SECONDS + 20  # the promise is 10 s; slack for a busy host
        while _status(there, leaving) != 401:
            assert time.monotonic() < deadline, "the other replica still takes the signed-out session"
            time.sleep(0.2)
        for url in replicas:
            assert _status(url, staying) == 200
            assert http_request(url, "GET", PROTECTED, headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
        # A replica started later knows it from its first request.
        provider = stack.enter_context(storage.open())
        later = stack.enter_context(running_server(StorageService(provider), token=TOKEN))
        assert _status(later, leaving) == 401 and _status(later, staying) == 200

"""The server's read gate (``server/read_gate.py``): at most N reads in the application at
once, let in in arrival order; writes and bodies being sent hold no slot."""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

import pytest

from factflow_storage import create_storage_provider
from factflow_storage.server.app import create_server
from factflow_storage.server.read_gate import ReadGate
from factflow_storage.server.wsgi import Frontend
from factflow_storage.service import StorageService
from server_fixture import running_server

DEADLINE = 30.0


def until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def test_waiting_readers_enter_in_the_order_they_came():
    gate = ReadGate(1)
    gate.enter()
    order: list[int] = []
    threads = []
    for number in range(6):
        def reader(number=number) -> None:
            gate.enter()
            order.append(number)
            gate.leave()
        thread = threading.Thread(target=reader)
        thread.start()
        threads.append(thread)
        until(lambda number=number: gate.waiting == number + 1, f"reader {number} to wait")
    gate.leave()
    for thread in threads:
        thread.join(DEADLINE)
    assert order == list(range(6))


def test_a_freed_slot_goes_to_the_oldest_waiter_not_a_newcomer():
    gate = ReadGate(1)
    gate.enter()
    entered: list[str] = []
    first_in = threading.Event()
    let_first_out = threading.Event()

    def first() -> None:
        gate.enter()
        entered.append("first")
        first_in.set()
        let_first_out.wait(DEADLINE)
        gate.leave()

    waiter = threading.Thread(target=first)
    waiter.start()
    until(lambda: gate.waiting == 1, "the first reader to wait")
    gate.leave()  # handed to the waiter, whether or not it has run yet
    newcomer = threading.Thread(target=lambda: (gate.enter(), entered.append("newcomer"), gate.leave()))
    newcomer.start()
    first_in.wait(DEADLINE)
    until(lambda: gate.waiting == 1, "the newcomer to wait")
    assert entered == ["first"]
    let_first_out.set()
    waiter.join(DEADLINE)
    newcomer.join(DEADLINE)
    assert entered == ["first", "newcomer"]


def test_no_more_than_the_slots_run_at_once_and_a_failure_frees_its_slot():
    inside = [0]
    most = [0]
    lock = threading.Lock()

    def app(environ, start_response):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.002)  # hold the slot a little so that others pile up behind it
        with lock:
            inside[0] -= 1
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("the application failed")
        start_response("200 OK", [])
        return [b"ok"]

    class Origins:
        def is_preflight(self, method, environ):
            return False

        def response_headers(self, environ):
            return []

    frontend = Frontend(app, Origins(), ReadGate(2))

    def call(method: str, path: str = "/") -> None:
        try:
            frontend({"REQUEST_METHOD": method, "PATH_INFO": path}, lambda status, headers, exc=None: None)
        except RuntimeError:
            pass

    threads = [threading.Thread(target=call, args=("GET", "/fail" if n % 3 == 0 else "/")) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert most[0] == 2
    assert frontend.gate.waiting == 0
    call("GET")  # every failed read gave its slot back: this one gets in

    most[0] = 0
    writers = [threading.Thread(target=call, args=("PUT",)) for _ in range(8)]
    started = threading.Barrier(8)

    def app_with_barrier(environ, start_response):
        started.wait(DEADLINE)  # all eight are inside at once, or this times out
        start_response("200 OK", [])
        return [b""]

    frontend.app = app_with_barrier
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(DEADLINE)
    assert not started.broken


def _get(url: str, path: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_bodies_being_sent_hold_no_slot(tmp_path):
    """With one slot, an open event stream and a half-read large object still let every
    other read through: only the application's call is gated."""
    service = StorageService(create_storage_provider(f"file://{tmp_path}/storage"))
    service.put("executions/e1/r/s/big", b"x" * (64 * 1024 * 1024))
    with running_server(service, read_slots=1) as url:
        parts = urlsplit(url)
        stream = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
        stream.request("GET", "/api/v1/storage/events?execution_id=e1&timeout=30")
        events = stream.getresponse()
        assert events.status == 200
        assert events.readline().startswith(b"retry:")
        large = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
        large.request("GET", "/api/v1/storage/objects/executions/e1/r/s/big")
        body = large.getresponse()
        assert body.status == 200
        assert body.read(1024) == b"x" * 1024  # the rest waits in the socket and the server
        for _ in range(5):
            status, listing = _get(url, "/api/v1/storage/objects?prefix=executions/e1/&include_metadata=true")
            assert status == 200 and b"executions/e1/r/s/big" in listing
        stream.close()
        large.close()


@pytest.mark.parametrize("slots, expected", [(None, 4), (0, None), (1, 1), (64, 8)])
def test_the_filesystem_provider_asks_for_slots_and_the_caller_decides(tmp_path, slots, expected):
    service = StorageService(create_storage_provider(f"file://{tmp_path}/storage"))
    server = create_server(service, "127.0.0.1", 0, threads=8, read_slots=slots)
    try:
        gate = server.read_gate
        assert (gate.slots if gate else None) == expected
    finally:
        server.close()

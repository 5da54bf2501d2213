"""The server's read gate (``server/read_gate.py``): at most N object reads and listings at
once, let in in arrival order; everything else, and bodies being sent, hold no slot."""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

import pytest

from factflow_storage import create_storage_provider
from factflow_storage.server.app import create_server, stop_server
from factflow_storage.server.read_gate import ReadGate
from factflow_storage.service import StorageService
from server_fixture import _serving, http_request

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
    gate = ReadGate(2)
    inside = [0]
    most = [0]
    lock = threading.Lock()
    # Two inside at once meet here; a third inside would wait for a fourth and time out.
    pair = threading.Barrier(2, timeout=DEADLINE)

    def read(number: int) -> None:
        try:
            with gate.turn():
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                pair.wait()
                with lock:
                    inside[0] -= 1
                if number % 3 == 0:
                    raise RuntimeError("the read failed")
        except RuntimeError:
            pass

    threads = [threading.Thread(target=read, args=(number,)) for number in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not pair.broken
    assert most[0] == 2
    assert gate.waiting == 0
    for _ in range(2):  # every failed read gave its slot back
        assert _within_deadline(gate.enter)
    assert not _within_deadline(gate.enter, timeout=0.2)


def _within_deadline(call, timeout: float = DEADLINE) -> bool:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


@pytest.fixture
def one_slot_server(tmp_path):
    service = StorageService(create_storage_provider(f"file://{tmp_path}/storage"))
    service.put("executions/e1/r/s/big", b"x" * (16 * 1024 * 1024))
    server = create_server(service, "127.0.0.1", 0, threads=8, read_slots=1)
    with _serving(server) as url:
        yield url, server.read_gate


def test_only_object_reads_and_listings_wait_for_a_slot(one_slot_server):
    url, gate = one_slot_server
    gate.enter()  # the one slot, held by the test
    try:
        for method, path, body in (("GET", "/api/v1/health", None),
                                   ("PUT", "/api/v1/storage/objects/executions/e1/r/s/new", b"new"),
                                   ("GET", "/api/v1/storage/du?prefix=executions/e1/", None)):
            done: list[int] = []

            def send(method=method, path=path, body=body, done=done) -> None:
                done.append(http_request(url, method, path, body=body).status)

            assert _within_deadline(send), (method, path)
            assert done[0] in (200, 201), (method, path, done)
        answers: dict[str, int] = {}
        reads = {"list": "/api/v1/storage/objects?prefix=executions/e1/&include_metadata=true",
                 "get": "/api/v1/storage/objects/executions/e1/r/s/new",
                 "metadata": "/api/v1/storage/objects/executions/e1/r/s/new?view=metadata"}
        waiting = [threading.Thread(target=lambda name=name, path=path: answers.__setitem__(
            name, http_request(url, "GET", path).status)) for name, path in reads.items()]
        for number, thread in enumerate(waiting):
            thread.start()
            until(lambda number=number: gate.waiting == number + 1, f"read {number} to wait")
        assert answers == {}
    finally:
        gate.leave()
    for thread in waiting:
        thread.join(DEADLINE)
    assert answers == {"list": 200, "get": 200, "metadata": 200}


def test_bodies_being_sent_hold_no_slot(one_slot_server):
    """With one slot, an open event stream and a half-read large object still let every
    other read through: a read holds its slot for the route's call, not for its bytes."""
    url, _gate = one_slot_server
    parts = urlsplit(url)
    stream = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
    large = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
    try:
        stream.request("GET", "/api/v1/storage/events?execution_id=e1&timeout=30")
        events = stream.getresponse()
        assert events.status == 200
        assert events.readline().startswith(b"retry:")
        large.request("GET", "/api/v1/storage/objects/executions/e1/r/s/big")
        body = large.getresponse()
        assert body.status == 200
        assert body.read(1024) == b"x" * 1024  # the rest waits in the socket and the server
        for _ in range(5):
            reply = http_request(url, "GET", "/api/v1/storage/objects?prefix=executions/e1/&include_metadata=true")
            assert reply.status == 200 and b"executions/e1/r/s/big" in reply.body
    finally:
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
        stop_server(server)

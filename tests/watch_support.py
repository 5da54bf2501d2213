"""What the watch tests share: storage kinds (filesystem, S3 through the journal, S3 with
the listen API via the stand-in), a writer thread, a CLI watcher and a raw SSE reader."""

from __future__ import annotations

import collections
import http.client
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import orjson
import pytest

from conftest import STORAGE_KINDS, StorageTarget
from factflow_storage.executions import set_status
from factflow_storage.watch.feed import HUB
from factflow_storage.watch.stream import LIVE
from listen_standin import ListenStandIn
from waiting import eventually

WATCH_KINDS = ("file", "s3", "s3-listen")
ROUTES = ("alpha", "beta", "gamma")


@dataclass
class Watched:
    kind: str
    target: StorageTarget
    standin: ListenStandIn | None = None


def _watched(request, tmp_path):
    kind = request.param
    if kind != "s3-listen":
        yield Watched(kind, STORAGE_KINDS[kind](request, tmp_path))
        return
    server = request.getfixturevalue("s3_server")
    standin = ListenStandIn(server.endpoint)
    options = dict(server.options(), endpoint=standin.endpoint)
    env = dict(server.env(), FACTFLOW_MINIO_ENDPOINT=standin.endpoint)
    watched = Watched(kind, StorageTarget(kind, f"minio://{server.new_bucket()}", options, env), standin)
    try:
        yield watched
    finally:
        watched.standin.close()  # a test may have restarted it


@pytest.fixture(params=WATCH_KINDS)
def watched(request, tmp_path):
    yield from _watched(request, tmp_path)


@pytest.fixture(params=("s3", "s3-listen"))
def s3_watched(request, tmp_path):
    yield from _watched(request, tmp_path)


def key_for(execution_id: str, index: int, routes=ROUTES) -> str:
    # Zero-padded ids: within a route, key order is write order.
    return f"executions/{execution_id}/{routes[index % len(routes)]}/parse/m{index:05d}.json"


def write_objects(provider, execution_id: str, indexes, pause: float = 0.01) -> list[str]:
    keys = []
    for index in indexes:
        key = key_for(execution_id, index)
        provider.write(key, orjson.dumps({"n": index}))
        keys.append(key)
        if pause:
            time.sleep(pause)
    return keys


class Writer(threading.Thread):
    """Writes ``count`` objects across routes, then marks the execution ``status``."""

    def __init__(self, provider, execution_id: str, indexes, *, status: str | None = "completed",
                 pause: float = 0.01, start_delay: float = 0.0):
        super().__init__(daemon=True)
        self.provider, self.execution_id, self.indexes = provider, execution_id, list(indexes)
        self.status, self.pause, self.start_delay = status, pause, start_delay
        self.keys: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            time.sleep(self.start_delay)
            self.keys = write_objects(self.provider, self.execution_id, self.indexes, self.pause)
            if self.status:
                set_status(self.provider, self.execution_id, self.status)
        except BaseException as err:  # surfaced by finish()
            self.error = err

    def finish(self, timeout: float = 120) -> list[str]:
        self.join(timeout)
        assert not self.is_alive(), "writer did not finish"
        if self.error:
            raise self.error
        return self.keys


def by_route(keys) -> dict[str, list[str]]:
    routes = collections.defaultdict(list)
    for key in keys:
        routes[key.split("/")[2]].append(key)
    return dict(routes)


def assert_same_writes(collected: list[str], written: list[str]) -> None:
    """Exactly the written keys, none twice, each route in write order."""
    assert collections.Counter(collected) == collections.Counter(written)
    got, expected = by_route(collected), by_route(written)
    for route, keys in expected.items():
        assert got[route] == keys, f"route {route}: got {short(got[route])}, written {short(keys)}"


def short(keys: list[str]) -> list[str]:
    return [key.rsplit("/", 1)[-1].removesuffix(".json") for key in keys]


# -- the CLI ----------------------------------------------------------------------

def factflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "factflow_storage", *args]


class CliWatch:
    """``factflow storage watch --output json`` in a subprocess, its output read as it comes,
    so a test can wait for a line (a replayed event, a log line) before it acts."""

    def __init__(self, env: dict, *args: str, verbose: bool = False):
        # -v: the watch logs LIVE once its replay is out, the signal that it is following.
        command = factflow(*(["-v"] if verbose else []), "storage", "watch", "--output", "json", *args)
        self.proc = subprocess.Popen(command, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stdout: list[bytes] = []
        self.stderr: list[bytes] = []
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._drain, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    def _drain(self, stream, lines: list[bytes]) -> None:
        for line in iter(stream.readline, b""):
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_rows(self, count: int = 1, timeout: float = 60) -> None:
        """Until ``count`` lines are on stdout: the watch has replayed, so it is armed."""
        self._wait(lambda: len(self.stdout) >= count, timeout, f"{count} rows on stdout")

    def wait_until_live(self, timeout: float = 60) -> None:
        """Until the watch (started with ``verbose``) says it follows live writes."""
        self.wait_for_stderr(LIVE.split("%s")[0], timeout)

    def wait_for_stderr(self, text: str, timeout: float = 60) -> None:
        self._wait(lambda: text in b"".join(self.stderr).decode(), timeout, repr(text) + " on stderr")

    def _wait(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        with self._changed:
            while not ready():
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(r.is_alive() for r in self._readers)):
                    raise AssertionError(f"watch never printed {what}; stderr: "
                                         f"{b''.join(self.stderr).decode()[-2000:]}")
                self._changed.wait(min(left, 0.5))

    def finish(self, timeout: float = 120) -> tuple[list[dict], int, str]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"watch did not end; stderr: {b''.join(self.stderr).decode()[-2000:]}") from None
        for reader in self._readers:
            reader.join(30)
        return [orjson.loads(line) for line in self.stdout], self.proc.returncode, b"".join(self.stderr).decode()


def start_cli_watch(env: dict, *args: str, verbose: bool = False) -> CliWatch:
    return CliWatch(env, *args, verbose=verbose)


def finish_cli(cli: CliWatch, timeout: float = 120) -> tuple[list[dict], int, str]:
    return cli.finish(timeout)


def object_keys(rows: list[dict]) -> list[str]:
    return [row["key"] for row in rows if row["event"] == "storage.object.created"]


# -- a raw SSE reader, independent of the project's own client --------------------

class RawSSE:
    """Reads ``/api/v1/storage/events`` with http.client; reconnects with Last-Event-ID."""

    def __init__(self, base_url: str, params: list[tuple[str, str]]):
        self.netloc = urlsplit(base_url).netloc
        self.params = params
        self.events: list[tuple[str | None, str, dict]] = []
        self.comments: list[str] = []
        self.last_id: str | None = None
        self.connections = 0

    def read(self, *, max_events: int | None = None, deadline: float = 120) -> bool:
        """One connection; True if it ended with the completion of every execution."""
        connection = http.client.HTTPConnection(self.netloc, timeout=30)
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        connection.request("GET", "/api/v1/storage/events?" + urlencode(self.params), headers=headers)
        response = connection.getresponse()
        assert response.status == 200, response.read()
        assert response.getheader("Content-Type").startswith("text/event-stream")
        self.connections += 1
        wanted = {value for name, value in self.params if name == "execution_id"}
        finished: set[str] = set()
        frame: dict[str, str] = {}
        end = time.monotonic() + deadline
        try:
            while time.monotonic() < end:
                line = response.readline()
                if not line:
                    return False
                line = line.decode().rstrip("\n")
                if line.startswith(":"):
                    self.comments.append(line)
                elif line:
                    name, _, value = line.partition(": ")
                    frame[name] = value
                elif "data" in frame:
                    data = orjson.loads(frame["data"])
                    self.last_id = frame.get("id", self.last_id)
                    self.events.append((frame.get("id"), frame.get("event", "message"), data))
                    frame = {}
                    if self.events[-1][1] == "execution.completed":
                        finished.add(data["execution_id"])
                        if finished >= wanted:
                            assert response.readline() == b"", "stream stays open after completion"
                            return True
                    if max_events is not None and len(self.events) >= max_events:
                        return False
                else:
                    frame = {}
            raise AssertionError("SSE stream did not end in time")
        finally:
            connection.close()

    def follow(self, deadline: float = 120) -> None:
        end = time.monotonic() + deadline
        while True:
            try:
                if self.read(deadline=max(1.0, end - time.monotonic())):
                    return
            except (OSError, http.client.HTTPException):
                pass  # the server is down or restarting: try again, as EventSource does
            assert time.monotonic() < end, "SSE stream never completed"
            time.sleep(0.2)

    def keys(self) -> list[str]:
        return [data["key"] for _, name, data in self.events if name == "storage.object.created"]

    def completions(self) -> list[dict]:
        return [data for _, name, data in self.events if name == "execution.completed"]


def wait_for_events(reader: RawSSE, count: int) -> None:
    eventually(lambda: len(reader.keys()) >= count, f"{count} events on the SSE stream")


def wait_armed(provider, execution_id: str, watchers: int = 1):
    """The in-process hub's feed of ``execution_id`` once ``watchers`` subscribe and it is
    armed: from then on every write reaches them."""
    def ready():
        entry = HUB._feeds.get((id(provider), execution_id))
        return entry and entry[1] >= watchers and entry[0].armed.is_set() and entry[0].record_read.is_set() and entry[0]
    return eventually(ready, f"{watchers} armed watchers of {execution_id}")


def reader_thread(reader: RawSSE, **kwargs) -> threading.Thread:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reader.follow(**kwargs)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def join_reader(thread: threading.Thread, timeout: float = 120) -> None:
    thread.join(timeout)
    assert not thread.is_alive(), "SSE reader did not finish"
    if thread.errors:  # type: ignore[attr-defined]
        raise thread.errors[0]  # type: ignore[attr-defined]


def cli_env(target: StorageTarget, **extra: str) -> dict:
    env = target.cli_env()
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(__file__)),
                                                      env.get("PYTHONPATH")]))
    return env

"""The console's executions list in a real headless Chromium: it asks for one page,
newest first, pages on with "Older executions", and refreshes only what can change."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from console_support import console_over

from factflow_storage import executions

COUNT = 120


@contextlib.contextmanager
def browsing(storage, tmp_path, *, running: bool = False):
    """A console over ``COUNT`` finished executions (and, if ``running``, a newer one
    still running): (Console, provider)."""
    with storage.open() as provider:
        for n in range(COUNT):
            minute = f"{n // 60:02d}:{n % 60:02d}"
            provider.write_execution(f"run-{n:03d}", {
                "execution_id": f"run-{n:03d}", "status": "completed", "started_at": f"2026-03-01T{minute}:00.000Z",
                "finished_at": f"2026-03-01T{minute}:30.000Z", "object_count": n})
        if running:
            provider.write_execution("live-run", {"execution_id": "live-run", "status": "running",
                                                  "started_at": "2026-03-02T08:00:00.000Z"})
        with console_over(provider, tmp_path) as console:
            yield console, provider


@pytest.fixture
def console(file_storage, tmp_path):
    with browsing(file_storage, tmp_path) as (console, _provider):
        yield console


@pytest.fixture
def console_with_running(file_storage, tmp_path):
    with browsing(file_storage, tmp_path, running=True) as opened:
        yield opened


def shown(console) -> list[str]:
    # One script, not a read per row: a refresh redrawing the table between two reads
    # would leave the second a stale element.
    return console.driver.execute_script(
        "return Array.from(document.querySelectorAll('tr[data-execution]'), row => row.dataset.execution);")


def test_the_home_page_asks_for_one_page_and_pages_on(console):
    console.open("#/", view="executions")
    assert shown(console) == [f"run-{n:03d}" for n in range(COUNT - 1, COUNT - 51, -1)]
    # Pages only: an idle refresh (``since=``) may come between them on a slow machine.
    asked = [url for url in console.requested_urls() if "/api/v1/executions" in url and "since=" not in url]
    assert asked and all("limit=50" in url for url in asked), asked
    console.find("#more-executions").click()
    console.wait_for(lambda: len(shown(console)) == 100)
    assert any("cursor=" in url for url in console.requested_urls())
    console.find("#more-executions").click()
    console.wait_for(lambda: len(shown(console)) == COUNT)
    assert shown(console)[-1] == "run-000"
    assert not console.find("#more-executions").is_displayed()


class ExecutionAnswers:
    """The execution lists the page fetched: (URL, rows in the answer), each once."""

    def __init__(self, console):
        self.console = console
        self.arriving: dict[str, str] = {}  # request id -> URL, until its body is in

    def new(self) -> list[tuple[str, int]]:
        """Those whose bodies arrived since the last call (asked for earlier, a body still
        arriving is not there to read)."""
        finished = []
        for entry in self.console.driver.get_log("performance"):
            message = orjson.loads(entry["message"])["message"]
            params = message["params"]
            if message["method"] == "Network.responseReceived" and "/api/v1/executions?" in params["response"]["url"]:
                self.arriving[params["requestId"]] = params["response"]["url"]
            elif message["method"] == "Network.loadingFinished":
                finished.append(params["requestId"])
        answers = []
        for request_id in finished:
            url = self.arriving.pop(request_id, None)
            if url is not None:
                body = self.console.driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": request_id})
                answers.append((url, len(orjson.loads(body["body"])["executions"])))
        return answers


def status_of(console, execution_id: str) -> str | None:
    return console.driver.execute_script(
        "const badge = document.querySelector(`tr[data-execution=\"${arguments[0]}\"] .badge`);"
        "return badge && badge.getAttribute('data-status');", execution_id)


def test_the_refresh_while_one_runs_asks_only_for_what_changed(console_with_running):
    console, provider = console_with_running
    console.open("#/", view="executions")
    assert shown(console)[0] == "live-run" and status_of(console, "live-run") == "running"
    answers = ExecutionAnswers(console)
    first, *refreshes = console.wait_for(answers.new)
    assert "since=" not in first[0] and first[1] == 50, first
    # Two refreshes (on a slow machine some may be in already): each asks for the
    # executions started since the running one.
    while len(refreshes) < 2:
        refreshes += console.wait_for(answers.new)
    for url, rows in refreshes:
        assert "since=" in url and rows == 1, refreshes
    executions.set_status(provider, "live-run", "completed")
    console.wait_for(lambda: status_of(console, "live-run") == "completed")
    assert len(shown(console)) == 50 and shown(console)[1] == f"run-{COUNT - 1:03d}"
    # Nothing runs now: the idle refresh asks for what started since the newest row.
    provider.write_execution("next-run", {"execution_id": "next-run", "status": "running",
                                          "started_at": "2026-03-02T09:00:00.000Z"})
    console.wait_for(lambda: shown(console)[0] == "next-run", timeout=60)
    assert shown(console)[1:3] == ["live-run", f"run-{COUNT - 1:03d}"] and len(shown(console)) == 51
    later = console.wait_for(answers.new)
    assert later and all("since=" in url and rows <= 2 for url, rows in later), later

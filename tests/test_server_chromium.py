"""The server as a real browser meets it: Debian's headless Chromium, driven with
selenium and chromedriver, against a live server on loopback."""

from __future__ import annotations

import shutil
import time

import pytest

from server_fixture import http_request, running_server

OBJECTS = "/api/v1/storage/objects"
EVENTS = "/api/v1/storage/events"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")

# Would read the listing and write it back as a new object: proof it ran with the API's origin.
ATTACK = b"""<html><head><title>stored page</title></head><body><script>
fetch('/api/v1/storage/objects').then(r => r.text()).then(listing =>
  fetch('/api/v1/storage/objects/pwned', {method: 'PUT', body: listing}));
fetch('/api/v1/storage/objects/pwned-direct', {method: 'PUT', body: 'x'});
document.title = 'ran';
</script></body></html>"""
SVG_ATTACK = (b'<svg xmlns="http://www.w3.org/2000/svg"><script>'
              b"fetch('/api/v1/storage/objects/pwned-svg', {method: 'PUT', body: 'x'});"
              b"document.title = 'ran';</script></svg>")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    downloads = tmp_path_factory.mktemp("downloads")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.parametrize("key, body, content_type", [
    ("page.html", ATTACK, "text/html"), ("page.xhtml", ATTACK, "application/xhtml+xml"),
    ("page.svg", SVG_ATTACK, "image/svg+xml"), ("page.txt", ATTACK, "text/plain"),
    ("page.bin", ATTACK, "application/octet-stream"),
])
def test_a_stored_page_cannot_use_the_api(browser, service, key, body, content_type):
    service.put(key, body, content_type=content_type)
    with running_server(service) as url:
        for path in (f"{OBJECTS}/{key}", f"{OBJECTS}/{key}?view=content"):
            # get() returns after the load event: an inline script that was allowed to run
            # has run by then, and would have set the title in the same breath as its fetches.
            browser.get(url + path)
            assert browser.execute_script("return document.readyState") == "complete"
            assert browser.title != "ran"
        assert not any(service.provider.exists(name) for name in ("pwned", "pwned-direct", "pwned-svg"))
        assert [row["key"] for row in http_request(url, "GET", OBJECTS).json()["objects"]] == [key]


COLLECT = """
window.__events = []; window.__opens = 0;
const source = new EventSource(arguments[0]);
window.__source = source;
source.onopen = () => { window.__opens += 1; };
for (const name of ['storage.object.created', 'execution.completed']) {
  source.addEventListener(name, e => window.__events.push([name, JSON.parse(e.data)]));
}
"""


def _events(browser) -> list:
    return browser.execute_script("return window.__events")


def _wait(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_an_event_source_on_a_finished_execution_stops(browser, service):
    service.put("executions/done/r/s/a.txt", b"a")
    service.set_execution_status("done", "completed")
    with running_server(service) as url:
        browser.get(url + "/api/v1/health")
        browser.execute_script(COLLECT, f"{EVENTS}?execution_id=done&timeout=30")
        assert _wait(lambda: any(name == "execution.completed" for name, _ in _events(browser)))
        # CLOSED is final: an EventSource in that state never reconnects, so nothing more can come.
        assert _wait(lambda: browser.execute_script("return window.__source.readyState") == 2, timeout=60)
        names = [name for name, _ in _events(browser)]
        assert names == ["storage.object.created", "execution.completed"]
        assert browser.execute_script("return window.__source.readyState") == 2  # CLOSED


def test_an_event_source_collects_every_event_across_a_server_restart(browser, service):
    service.set_execution_status("run", "running")
    written = []

    def write(count: int) -> None:
        for _ in range(count):
            key = f"executions/run/r/s/{len(written):03d}.txt"
            service.put(key, b"x")
            written.append(key)

    with running_server(service) as url:
        port = int(url.rsplit(":", 1)[1])
        browser.get(url + "/api/v1/health")
        browser.execute_script(COLLECT, f"{EVENTS}?execution_id=run&timeout=60")
        write(3)
        assert _wait(lambda: len(_events(browser)) == 3)
    write(3)  # while the server is down
    assert _wait(lambda: browser.execute_script("return window.__source.readyState") == 0, timeout=60)  # CONNECTING
    with running_server(service, port=port):
        write(3)
        service.set_execution_status("run", "completed")
        assert _wait(lambda: any(name == "execution.completed" for name, _ in _events(browser)), timeout=60)
        assert _wait(lambda: browser.execute_script("return window.__source.readyState") == 2, timeout=60)
    keys = [data["key"] for name, data in _events(browser) if name == "storage.object.created"]
    assert keys == written  # each once, in order
    assert [name for name, _ in _events(browser)].count("execution.completed") == 1
    assert browser.execute_script("return window.__opens") >= 2

"""Headless Chromium for the console tests, driven by selenium and Debian's chromedriver.

``open_browser(download_dir)`` starts a fresh browser (its own profile, downloads into
``download_dir``, network requests logged so a test can read every URL the page asked
for). ``Console`` wraps one driver pointed at one server: open a route, wait for its
view, take screenshots, read the URLs requested.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from server_fixture import running_server

from factflow_storage.service import StorageService

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# As root Chromium needs --no-sandbox; the rest keep it from calling out or updating.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,900")
# Set to a directory to collect every screenshot there too (the suite keeps them in tmp).
SHOTS_ENV = "FACTFLOW_CONSOLE_SHOTS"


def open_browser(download_dir: Path, profile_dir: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False,
                                              "safebrowsing.enabled": False})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.set_page_load_timeout(30)
    return driver


class Console:
    def __init__(self, driver: webdriver.Chrome, base_url: str, shots: Path, download_dir: Path):
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        self.download_dir = download_dir

    def open(self, route: str = "#/", *, view: str | None = None, timeout: float = 60) -> dict[str, Any]:
        self.driver.get(f"{self.base_url}/{route}")
        return self.wait_view(view, timeout=timeout)

    def wait_view(self, view: str | None = None, timeout: float = 60) -> dict[str, Any]:
        """Waits until <main> says its view has its data; returns its view and load time."""
        def ready(driver):
            # One read of it all: read one at a time, the previous view's "ready" and the
            # next view's name (set as it starts rendering) could pass together. The drawn
            # link must be the current one: a hash change renders a moment later, and until
            # then the previous view (maybe of the same kind) still says it is ready.
            state = driver.execute_script(
                "const m = document.getElementById('main');"
                "return [m.getAttribute('data-ready'), m.getAttribute('data-view'), m.getAttribute('data-load-ms'),"
                " m.getAttribute('data-route') === location.hash];")
            ready_flag, shown, load_ms, current = state
            if ready_flag != "true" or not current or (view is not None and shown != view):
                return False
            return {"view": shown, "load_ms": int(load_ms)}
        return WebDriverWait(self.driver, timeout, poll_frequency=0.02).until(ready)

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_for(self, condition: Callable[[], Any], timeout: float = 60, poll: float = 0.02) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except Exception:  # noqa: BLE001 - the element may not exist yet
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
            time.sleep(poll)

    def screenshot(self, name: str, *, full: bool = False) -> Path:
        """A PNG of the view; ``full``: of the whole page (up to 3000 px), not the window."""
        path = self.shots / f"{name}.png"
        if full:
            size = self.driver.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 3000), "scale": 1}})
            path.write_bytes(base64.b64decode(shot["data"]))
        else:
            self.driver.save_screenshot(str(path))
        collect = os.environ.get(SHOTS_ENV)
        if collect:
            Path(collect).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(collect) / path.name)
        return path

    def requested_urls(self) -> list[str]:
        """Every URL the browser requested or navigated to since the last call."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = orjson.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
                urls.append(message["params"].get("documentURL", ""))
        return urls

    def downloaded(self, timeout: float = 20) -> Path:
        def done():
            files = [path for path in self.download_dir.iterdir() if not path.name.endswith(".crdownload")]
            partial = [path for path in self.download_dir.iterdir() if path.name.endswith(".crdownload")]
            return files[0] if files and not partial else None
        return self.wait_for(done, timeout=timeout, poll=0.1)


def temp_dirs(base: Path) -> tuple[Path, Path]:
    downloads = base / "downloads"
    downloads.mkdir()
    return downloads, Path(tempfile.mkdtemp(prefix="chromium-", dir=base))


@contextlib.contextmanager
def console_over(provider, base: Path, *, threads: int = 8):
    """A browser on a console served over ``provider``, closed afterwards."""
    with running_server(StorageService(provider), threads=threads) as url:
        downloads, profile = temp_dirs(base)
        (base / "shots").mkdir()
        driver = open_browser(downloads, profile)
        try:
            yield Console(driver, url, base / "shots", downloads)
        finally:
            driver.quit()


def cli(storage, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """``factflow ARGS`` over ``storage`` in a subprocess; it must succeed."""
    done = subprocess.run([sys.executable, "-m", "factflow_storage", *args], input=stdin, capture_output=True,
                          env=storage.cli_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done


@contextlib.contextmanager
def serve_demo(storage, execution_id: str):
    """A server over ``storage`` holding the demo as ``execution_id``: (base URL, service)."""
    cli(storage, "demo", "--execution", execution_id)
    with storage.open() as provider:
        service = StorageService(provider)
        with running_server(service, threads=16) as url:
            yield url, service

"""The console's executions list in a real headless Chromium: it asks for one page,
newest first, and pages on with "Older executions"."""

from __future__ import annotations

import pytest
from console_support import Console, open_browser, temp_dirs
from server_fixture import running_server

from factflow_storage.service import StorageService

COUNT = 120


@pytest.fixture
def console(file_storage, tmp_path):
    with file_storage.open() as provider:
        for n in range(COUNT):
            minute = f"{n // 60:02d}:{n % 60:02d}"
            provider.write_execution(f"run-{n:03d}", {
                "execution_id": f"run-{n:03d}", "status": "completed", "started_at": f"2026-03-01T{minute}:00.000Z",
                "finished_at": f"2026-03-01T{minute}:30.000Z", "object_count": n})
        with running_server(StorageService(provider), threads=8) as url:
            downloads, profile = temp_dirs(tmp_path)
            (tmp_path / "shots").mkdir()
            driver = open_browser(downloads, profile)
            try:
                yield Console(driver, url, tmp_path / "shots", downloads)
            finally:
                driver.quit()


def shown(console) -> list[str]:
    return [row.get_attribute("data-execution") for row in console.find_all("tr[data-execution]")]


def test_the_home_page_asks_for_one_page_and_pages_on(console):
    console.open("#/", view="executions")
    assert shown(console) == [f"run-{n:03d}" for n in range(COUNT - 1, COUNT - 51, -1)]
    asked = [url for url in console.requested_urls() if "/api/v1/executions" in url]
    assert asked and all("limit=50" in url for url in asked), asked
    console.find("#more-executions").click()
    console.wait_for(lambda: len(shown(console)) == 100)
    assert any("cursor=" in url for url in console.requested_urls())
    console.find("#more-executions").click()
    console.wait_for(lambda: len(shown(console)) == COUNT)
    assert shown(console)[-1] == "run-000"
    assert not console.find("#more-executions").is_displayed()

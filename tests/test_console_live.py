"""The execution view's live panel in a real headless Chromium: it opens from the current
state (counts per route and stage, not one event per object written) and then counts each
new write."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from console_support import console_over

from factflow_storage.executions import set_status

EXEC = "big-run"
PER_STAGE = {"fetch/page": 1500, "parse/chunk": 1000, "parse/embed": 500}


@pytest.fixture
def console(file_storage, tmp_path):
    with file_storage.open() as provider:
        set_status(provider, EXEC, "running")
        keys = [f"executions/{EXEC}/{stage_id}/m{n:05d}.json" for stage_id, count in PER_STAGE.items()
                for n in range(count)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda key: provider.write(key, b"{}"), keys))
        with console_over(provider, tmp_path) as console:
            yield console, provider


def stage_counts(console) -> dict[str, str]:
    return {row.get_attribute("data-stage"): row.find_elements("css selector", "td")[2].text
            for row in console.find_all("#live-counts tr[data-stage]")}


def test_the_live_panel_opens_with_counts_then_counts_new_writes(console):
    console, provider = console
    console.open(f"#/e/{EXEC}", view="execution")
    console.wait_for(lambda: console.find("#live-count").text == "3000")
    assert stage_counts(console) == {stage_id: str(count) for stage_id, count in PER_STAGE.items()}
    streams = [url for url in console.requested_urls() if "/api/v1/storage/events" in url]
    assert streams and all("replay=counts" in url for url in streams), streams
    assert console.find_all("#live-list li") == []  # nothing replayed as a write
    key = f"executions/{EXEC}/parse/embed/m-new.json"
    provider.write(key, b"{}")
    console.wait_for(lambda: console.find("#live-count").text == "3001")
    assert stage_counts(console)["parse/embed"] == "501"
    assert [li.get_attribute("data-key") for li in console.find_all("#live-list li")] == [key]
    console.wait_for(lambda: console.find("#execution-count").text == "3001")
    console.screenshot("live-counts")
    set_status(provider, EXEC, "completed")
    console.wait_for(lambda: console.find("#live").get_attribute("data-state") == "finished")

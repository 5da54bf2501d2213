"""Counts in the console read as English: "1 object", "2 objects". Checked over the
filesystem provider alone, on an execution of one object that one object of another
execution names in its lineage."""

from __future__ import annotations

import pytest
from console_support import Console, open_browser, temp_dirs
from server_fixture import running_server

from factflow_storage.service import StorageService

ONE = "one-object"
KEY = f"executions/{ONE}/route/stage/only.txt"
OTHER = "names-it"
OTHER_KEY = f"executions/{OTHER}/route/stage/reuse.json"


@pytest.fixture
def console(file_storage, tmp_path):
    with file_storage.open() as provider:
        service = StorageService(provider)
        service.put(KEY, b"x", {}, content_type="text/plain")
        service.set_execution_status(ONE, "completed")
        service.put(OTHER_KEY, b"{}", {"lineage": [KEY]}, content_type="application/json")
        service.set_execution_status(OTHER, "completed")
        with running_server(service, threads=8) as url:
            downloads, profile = temp_dirs(tmp_path)
            shots = tmp_path / "shots"
            shots.mkdir()
            page = Console(open_browser(downloads, profile), url, shots, downloads)
            try:
                yield page
            finally:
                page.driver.quit()


def test_listing_counts_say_one_object_and_one_folder(console):
    console.open(f"#/b/executions/{ONE}/route/stage/", view="browse")
    assert console.find("#listing-count").text == "1 object, 0 folders on this page"
    console.open(f"#/b/executions/{ONE}/route/", view="browse")
    assert console.find("#listing-count").text == "0 objects, 1 folder on this page"


def test_retention_of_one_object_named_by_one_object_reads_in_the_singular(console):
    console.open(f"#/e/{ONE}", view="execution")
    console.find("#retention-plan").click()
    console.wait_for(lambda: console.find("#retention").get_attribute("data-state") == "planned")
    assert console.find("#retention-plan-result h3 + p").text == (
        "1 object of another execution names this execution's objects in its lineage.")
    assert console.find('#plan-facts dd[data-fact="bytes"]').text == "1 B (1 byte)"
    assert console.find("label.force").text.endswith("Force: delete it anyway and break the lineage of 1 object")
    console.find("#retention-force").click()
    console.find("#retention-delete").click()
    assert console.find("#retention-question").text.startswith(
        f"Delete {ONE} permanently: 1 object, 1 B, breaking other executions' lineage?")
    console.find("#retention-confirm-yes").click()
    console.wait_for(lambda: console.find("#retention").get_attribute("data-state") == "deleted")
    assert console.find("#retention-done").text.startswith("Deleted 1 object, 1 B.")
    console.screenshot("retention-deleted-one-object", full=True)
    console.find("#retention-done a").click()
    console.wait_view("executions")
    console.open(f"#/e/{ONE}", view="execution")
    record = console.wait_for(lambda: console.find("#deletion-record"))
    assert ": 1 object, 1 B (forced)." in record.text

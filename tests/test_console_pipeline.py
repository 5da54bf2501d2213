"""The console following a pipeline, in a real headless Chromium against a real server:
errors shown (malformed links, missing objects, a server gone, a refused stream), stage
listings that follow writes, filters and jumps on big stages, and the pipeline graph."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
import socket
import time
from pathlib import Path

import pytest
from console_support import Console, cli, open_browser, serve_demo, temp_dirs
from selenium.webdriver.common.by import By
from server_fixture import running_server

import factflow_storage
from factflow_storage.service import StorageService

DEMO = "demo-pipeline"


def serve(target):
    return serve_demo(target, DEMO)


@contextlib.contextmanager
def browse(url: str, tmp_path):
    downloads, profile = temp_dirs(tmp_path)
    shots = tmp_path / "shots"
    shots.mkdir(exist_ok=True)
    page = Console(open_browser(downloads, profile), url, shots, downloads)
    try:
        yield page
    finally:
        page.driver.quit()


@pytest.fixture
def served(storage):
    with serve(storage) as pair:
        yield pair


@pytest.fixture
def console(served, tmp_path):
    with browse(served[0], tmp_path) as page:
        yield page


# What only the browser does (links, errors, the stream's retries) is checked over the
# filesystem provider alone.
@pytest.fixture
def file_console(file_storage, tmp_path):
    with serve(file_storage) as (url, _), browse(url, tmp_path) as page:
        yield page


def test_the_console_stays_small():
    console = Path(factflow_storage.__file__).parent / "server" / "console"
    assert sum(path.stat().st_size for path in console.iterdir()) < 200 * 1024


def heading(console) -> str:
    return console.find("#main h1").text


def rows(console) -> list[str]:
    return [row.get_attribute("data-key") for row in console.find_all("#listing-objects tr")]


# -- errors ------------------------------------------------------------------------------


def test_a_malformed_link_shows_an_error_instead_of_the_previous_view(file_console):
    console = file_console
    console.open(f"#/e/{DEMO}", view="execution")
    console.driver.get(f"{console.base_url}/#/o/bad%E0key")
    console.wait_view("error")
    assert heading(console) == "Bad request"
    assert "malformed" in console.find("#main .error").text
    assert not console.find_all("#pipeline")  # the execution view is gone
    errors = [entry for entry in console.driver.get_log("browser") if "URIError" in entry["message"]]
    assert errors == []


def test_a_missing_object_says_not_found(file_console):
    console = file_console
    console.open(f"#/o/executions/{DEMO}/nope/none/msg.json", view="object")
    assert heading(console) == "Not found"
    assert console.find("#main").get_attribute("data-error") == "not_found"


def test_a_server_that_went_away_is_shown_and_the_stream_comes_back(file_storage, tmp_path):
    storage = file_storage
    cli(storage, "execution", "start", "away")
    with storage.open() as provider:
        service = StorageService(provider)
        service.put("executions/away/r/s/a.json", b"{}")
        downloads, profile = temp_dirs(tmp_path)
        page = Console(open_browser(downloads, profile), "", tmp_path, downloads)
        try:
            with running_server(service) as url:
                page.base_url = url
                port = int(url.rsplit(":", 1)[1])
                page.open("#/e/away", view="execution")
                page.wait_for(lambda: page.find("#live").get_attribute("data-state") == "open")
            page.wait_for(lambda: page.find("#live").get_attribute("data-state") == "reconnecting")
            assert "unreachable" in page.find("#live-state").text
            page.driver.execute_script("location.hash = '#/o/executions/away/r/s/a.json'")
            page.wait_view("object")
            assert heading(page) == "Server unreachable"
            with running_server(service, port=port):
                page.find("#retry").click()
                page.wait_view("object")
                assert page.find("#metadata")
                page.driver.execute_script("location.hash = '#/e/away'")
                page.wait_view("execution")
                page.wait_for(lambda: page.find("#live").get_attribute("data-state") == "open")
        finally:
            page.driver.quit()


def _hold_stream(url: str, execution: str) -> socket.socket:
    """An admitted event stream (its response head read): it holds one of the server's slots."""
    host, port = url.rsplit("/", 1)[1].split(":")
    held = socket.create_connection((host, int(port)), timeout=10)
    held.sendall(f"GET /api/v1/storage/events?execution_id={execution}&timeout=60 HTTP/1.1\r\n"
                 f"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = held.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return held


def test_a_refused_stream_says_paused_and_resumes_after_retry_after(file_storage, tmp_path):
    storage = file_storage
    cli(storage, "execution", "start", "busy")
    with storage.open() as provider:
        service = StorageService(provider)
        service.put("executions/busy/r/s/a.json", b"{}")
        downloads, profile = temp_dirs(tmp_path)
        with running_server(service, max_streams=1) as url:
            page = Console(open_browser(downloads, profile), url, tmp_path, downloads)
            try:
                held = _hold_stream(url, "busy")
                page.open("#/b/executions/busy/r/s/", view="browse")
                page.wait_for(lambda: page.find("#listing-live").get_attribute("data-state") == "paused")
                assert page.find("#listing-live-state").text.startswith("live updates paused")
                page.screenshot("console-stream-paused")
                held.close()  # the slot frees; the page retries after Retry-After (5 s)
                page.wait_for(lambda: page.find("#listing-live").get_attribute("data-state") == "open")
                service.put("executions/busy/r/s/b.json", b"{}")
                page.wait_for(lambda: rows(page) == ["executions/busy/r/s/a.json", "executions/busy/r/s/b.json"])
            finally:
                page.driver.quit()


# -- stage listings follow writes ----------------------------------------------------------


def test_an_open_stage_listing_adds_new_objects_in_key_order(console, served, storage):
    _, service = served
    execution = "follow"
    service.set_execution_status(execution, "running")
    stage = f"executions/{execution}/route/stage/"
    for number in range(0, 60, 2):
        service.put(f"{stage}msg-{number:04d}.json", b"{}")
    console.open(f"#/b/{stage}", view="browse")
    console.wait_for(lambda: console.find("#listing-live").get_attribute("data-state") == "open")
    console.driver.execute_script("window.scrollTo(0, 400)")
    scrolled = console.driver.execute_script("return window.scrollY")
    assert scrolled > 0
    # How soon a write shows is printed here and measured in bench/console_bench.py: an
    # assertion on it would fail at random on a loaded machine.
    lags = []
    for number in (33, 1, 59):
        key = f"{stage}msg-{number:04d}.json"
        service.put(key, b'{"new": true}')
        written = time.monotonic()
        console.wait_for(lambda key=key: key in rows(console))
        lags.append(time.monotonic() - written)
    print(f"\nwrite to row in an open stage listing: {', '.join(f'{lag:.2f} s' for lag in lags)}")
    expected = sorted([f"{stage}msg-{n:04d}.json" for n in range(0, 60, 2)] + [f"{stage}msg-{n:04d}.json" for n in (1, 33, 59)])
    assert rows(console) == expected
    assert console.find("#listing-count").text.startswith("33 objects")
    # Rows added below the top of the window keep what the user looks at in place.
    assert console.driver.execute_script("return window.scrollY") >= scrolled
    console.screenshot(f"stage-live-{storage.kind}")


def test_a_stage_page_adds_only_the_writes_that_belong_on_it(console, served, storage):
    _, service = served
    execution = "paged"
    service.set_execution_status(execution, "running")
    stage = f"executions/{execution}/route/stage/"
    for number in range(0, 210, 2):
        service.put(f"{stage}msg-{number:04d}.json", b"{}")
    console.open(f"#/b/{stage}", view="browse")  # page one: msg-0000 .. msg-0198
    console.wait_for(lambda: console.find("#listing-live").get_attribute("data-state") == "open")
    service.put(f"{stage}msg-0205.json", b"{}")  # belongs on page two
    service.put(f"{stage}msg-0101.json", b"{}")  # belongs here
    console.wait_for(lambda: f"{stage}msg-0101.json" in rows(console))
    assert f"{stage}msg-0205.json" not in rows(console)
    assert len(rows(console)) == 101


# -- big stages: filter and jump ------------------------------------------------------------


BIG = 5000


def write_many(service, stage: str, count: int) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda number: service.put(f"{stage}msg-{number:05d}.json", b"{}"), range(count)))


@pytest.fixture
def big_stage(served):
    stage = "executions/big/route/stage/"
    write_many(served[1], stage, BIG)
    return stage


def test_a_5000_object_stage_filters_to_one_key_and_jumps_to_a_key(console, big_stage, storage):
    console.open(f"#/b/{big_stage}", view="browse")
    assert len(rows(console)) == 100
    console.find("#filter").send_keys("msg-04999")
    console.find("#filter-apply").click()
    console.wait_for(lambda: rows(console) == [f"{big_stage}msg-04999.json"])
    console.screenshot(f"stage-filter-{storage.kind}")
    console.open(f"#/b/{big_stage}?q=msg-0499*", view="browse")  # a glob: a name prefix
    assert rows(console) == [f"{big_stage}msg-0499{n}.json" for n in range(10)]
    console.open(f"#/b/{big_stage}", view="browse")
    console.find("#jump").send_keys("msg-04990")
    console.find("#filter-apply").click()
    console.wait_for(lambda: (rows(console) or [None])[0] == f"{big_stage}msg-04990.json")
    assert len(rows(console)) == 10
    assert not console.find_all("#next-page")


def test_a_filtered_request_scans_a_bounded_number_of_keys_and_answers_a_cursor(file_storage, monkeypatch):
    from factflow_storage import service as service_module

    stage = "executions/big/route/stage/"
    with file_storage.open() as provider:
        service = StorageService(provider)
        write_many(service, stage, 2000)
        monkeypatch.setattr(service_module, "SCAN_LIMIT", 500)
        pages, cursor, found = 0, None, []
        while True:
            page = service.list_page(stage, delimiter="/", include_metadata=False, contains="01999", cursor=cursor)
            pages += 1
            found += [row["key"] for row in page["objects"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert found == [f"{stage}msg-01999.json"]
    assert pages == 4  # 500 keys a request


# -- the pipeline graph ---------------------------------------------------------------------


def graph_facts(console) -> dict:
    """Nodes and edges as drawn, read in one script (the graph is redrawn as writes arrive)."""
    nodes, edges = console.driver.execute_script("""
        const nodes = [...document.querySelectorAll('#graph .node')].map((n) => [n.dataset.stage, +n.dataset.objects]);
        const edges = [...document.querySelectorAll('#graph .edge')].map((e) => [e.dataset.from, e.dataset.to]);
        return [nodes, edges];""")
    return {"nodes": dict(nodes), "edges": sorted(tuple(edge) for edge in edges)}


DEMO_EDGES = [("markdown_processor/html_to_markdown", "markdown_processor/chunker"),
              ("sitemap_scraper/sitemap", "sitemap_scraper/web_scraper"),
              ("sitemap_scraper/web_scraper", "markdown_processor/html_to_markdown")]


def test_the_demo_graph_shows_four_stages_with_counts_and_three_edges(console, storage):
    console.open(f"#/e/{DEMO}", view="execution")
    console.wait_for(lambda: console.find_all("#pipeline[data-loaded]"))
    assert graph_facts(console) == {"nodes": {"markdown_processor/chunker": 5, "markdown_processor/html_to_markdown": 5,
                                              "sitemap_scraper/sitemap": 1, "sitemap_scraper/web_scraper": 5},
                                    "edges": DEMO_EDGES}
    sizes = {row.get_attribute("data-stage") or row.get_attribute("data-route"): row.find_elements(By.CSS_SELECTOR, "td")[1].text
             for row in console.find_all("#stage-sizes tbody tr")}
    assert sizes["sitemap_scraper"] == "6" and sizes["markdown_processor"] == "10"
    console.screenshot(f"graph-{storage.kind}", full=True)
    console.find('#graph .node[data-stage="sitemap_scraper/web_scraper"]').click()
    console.wait_view("browse")
    assert len(rows(console)) == 5


def test_the_graph_follows_a_running_execution(console, served, storage):
    _, service = served
    execution = "growing"
    service.set_execution_status(execution, "running")
    source = f"executions/{execution}/fetch/page/msg-0000.html"
    service.put(source, b"<p>x</p>")
    console.open(f"#/e/{execution}", view="execution")
    console.wait_for(lambda: console.find("#live").get_attribute("data-state") == "open")
    console.wait_for(lambda: graph_facts(console)["nodes"] == {"fetch/page": 1})
    for number in range(3):
        service.put(f"executions/{execution}/parse/text/msg-{number:04d}.txt", b"x", {"lineage": [source]})
    console.wait_for(lambda: graph_facts(console) == {"nodes": {"fetch/page": 1, "parse/text": 3},
                                                      "edges": [("fetch/page", "parse/text")]})
    console.wait_for(lambda: console.find_all('#graph .node.receiving[data-stage="parse/text"]'))
    assert console.find("#execution-count").text == "4"
    console.screenshot(f"graph-running-{storage.kind}", full=True)
    service.set_execution_status(execution, "completed")
    console.wait_for(lambda: console.find("#live").get_attribute("data-state") == "finished")
    console.wait_for(lambda: not console.find_all("#graph .node.receiving"))
    # Live list, graph, counts and routes all fed by one stream.
    streams = [url for url in console.requested_urls() if "/api/v1/storage/events" in url]
    assert len(streams) == 1, streams

"""The web console in a real headless Chromium, against a real ``factflow serve`` on each
provider: what a user sees, what the page requests, what it can and cannot do.

Screenshots of every view are kept in the test's tmp dir (and copied to
``$FACTFLOW_CONSOLE_SHOTS`` when set).
"""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import zipfile
import zlib

import pytest
from console_support import Console, cli, open_browser, serve_demo, temp_dirs
from selenium.webdriver.common.by import By
from server_fixture import http_request, running_server

from factflow_storage.service import StorageService

DEMO = "demo-console"
CHUNK = f"executions/{DEMO}/markdown_processor/chunker/msg-0002.json"
PAGE = f"executions/{DEMO}/sitemap_scraper/web_scraper/msg-0002.html.gz"
TOKEN = "s3cret-console-token-7f1c"
EVIL_HTML = b"""<!doctype html><html><head><title>pwned</title>
<script>window.top.pwned = 1; document.title = 'pwned';
fetch('/api/v1/storage/objects/executions/evil/r/s/written-by-script', {method: 'PUT', body: 'x'});</script>
</head><body><img src="x" onerror="window.top.pwned = 2"><h1>hello</h1></body></html>"""
EVIL_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg"><script>window.top.pwned = 3</script>
<circle r="5" onload="window.top.pwned = 4"/></svg>"""


@pytest.fixture
def served(storage):
    """A server over ``storage`` holding the demo execution: (base URL, service)."""
    with serve_demo(storage, DEMO) as pair:
        yield pair


def make_console(tmp_path, url: str):
    downloads, profile = temp_dirs(tmp_path)
    shots = tmp_path / "shots"
    shots.mkdir()
    driver = open_browser(downloads, profile)
    return Console(driver, url, shots, downloads)


@pytest.fixture
def console(served, tmp_path):
    url, _ = served
    page = make_console(tmp_path, url)
    yield page
    page.driver.quit()


def execution_row(console, execution_id: str) -> dict | None:
    """A row of the executions list, its status and cells' text read in one script: the
    list redraws itself on a timer, so a row found by one call may be gone by the next."""
    return console.driver.execute_script(
        "const row = document.querySelector(`tr[data-execution=\"${arguments[0]}\"]`);"
        "return row && {status: row.querySelector('[data-status]').innerText.trim(),"
        " cells: Array.from(row.querySelectorAll('td'), cell => cell.innerText.trim())};", execution_id)


def test_executions_list_shows_the_demo(console, storage):
    console.open("#/", view="executions")
    row = execution_row(console, DEMO)
    assert row["status"] == "completed"
    assert row["cells"][0] == DEMO and row["cells"][-1] == "16"
    console.screenshot(f"executions-{storage.kind}")
    # Readable on a narrow window: the layout reflows instead of scrolling sideways.
    console.driver.set_window_size(420, 800)
    console.wait_for(lambda: console.driver.execute_script("return window.innerWidth") <= 420)
    assert console.driver.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    console.screenshot(f"executions-narrow-{storage.kind}")


def test_browse_by_clicking_to_an_object_shows_metadata_lineage_and_preview(console, storage):
    console.open("#/", view="executions")
    console.find(f'tr[data-execution="{DEMO}"] a').click()
    console.wait_view("execution")
    assert [row.get_attribute("data-prefix") for row in console.find_all("#listing tr[data-prefix]")] == [
        f"executions/{DEMO}/markdown_processor/", f"executions/{DEMO}/sitemap_scraper/"]
    console.screenshot(f"execution-{storage.kind}")
    console.find(f'tr[data-prefix="executions/{DEMO}/markdown_processor/"] a').click()
    console.wait_view("browse")
    console.find(f'tr[data-prefix="executions/{DEMO}/markdown_processor/chunker/"] a').click()
    console.wait_view("browse")
    assert len(console.find_all("#listing tr[data-key]")) == 5
    console.screenshot(f"browse-{storage.kind}")
    console.find(f'tr[data-key="{CHUNK}"] a').click()
    console.wait_view("object")
    assert console.driver.current_url.endswith("#/o/" + CHUNK)
    assert console.find('tr[data-field="adapter"] td').text == "chunker"
    assert console.find('tr[data-field="content_length"] td').text.endswith(" bytes)")
    parent = f"executions/{DEMO}/markdown_processor/html_to_markdown/msg-0002.md"
    assert [link.text for link in console.find_all("#lineage a")] == [parent]
    # JSON pretty-printed and folded: nested levels are <details>, the top ones open.
    tree = console.find("#preview-json")
    assert '"source": "' + parent + '"' in tree.text and '"chunks"' in tree.text
    assert tree.find_element(By.TAG_NAME, "details").get_attribute("open") == "true"
    console.screenshot(f"object-json-{storage.kind}", full=True)
    # Following the lineage link shows the Markdown parent as text; Back returns.
    console.find("#lineage a").click()
    console.wait_view("object")
    assert console.find("#preview-text").text == "# pricing\n\nAbout pricing."
    console.driver.back()
    console.wait_view("object")
    assert console.driver.current_url.endswith("#/o/" + CHUNK)
    # A deep link straight to a gzip'd page: decompressed in the browser, shown as source.
    console.open("#/o/" + PAGE, view="object")
    preview = console.find("#preview-text")
    assert preview.get_attribute("data-kind") == "source"
    assert preview.text.startswith("<html><head><title>pricing</title>")
    console.screenshot(f"object-gzip-{storage.kind}", full=True)


def test_object_children_are_links_loaded_after_the_view_and_none_known_says_so(console, served, storage):
    _, service = served
    markdown = f"executions/{DEMO}/markdown_processor/html_to_markdown/msg-0002.md"
    replay = "executions/demo-replay/markdown_processor/html_to_markdown/msg-0002.md"
    # A replay in another execution reusing the page: found through the lineage index.
    service.put(replay, b"# pricing, again\n", {"lineage": [PAGE]}, content_type="text/markdown")
    console.open("#/o/" + PAGE, view="object")
    console.wait_for(lambda: console.find("#children-section").get_attribute("data-loaded") == "true")
    links = console.find_all("#children a")
    assert [link.text for link in links] == [markdown, replay]
    assert [link.get_attribute("href").split("#", 1)[1] for link in links] == ["/o/" + markdown, "/o/" + replay]
    assert console.find("#children-section").text.splitlines() == ["Children (2)", markdown, replay]
    console.screenshot(f"object-children-{storage.kind}", full=True)
    # Following one opens that object, whose lineage leads back.
    links[1].click()
    console.wait_view("object")
    assert console.driver.current_url.endswith("#/o/" + replay)
    assert console.find("#preview-text").text == "# pricing, again"
    assert [link.text for link in console.find_all("#lineage a")] == [PAGE]
    console.wait_for(lambda: console.find("#children-section").get_attribute("data-loaded") == "true")
    assert console.find_all("#children a") == []
    assert console.find("#children-none").text.startswith("None known")
    console.driver.back()
    console.wait_view("object")
    console.wait_for(lambda: len(console.find_all("#children a")) == 2)
    # The view never depends on them: with the lineage call failing it still shows in full.
    console.driver.execute_cdp_cmd("Network.enable", {})
    console.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/api/v1/storage/lineage*"]})
    try:
        console.open("#/o/" + markdown, view="object")
        assert console.find("#preview-text").text == "# pricing\n\nAbout pricing."
        console.wait_for(lambda: console.find("#children-section").get_attribute("data-loaded") == "true")
        assert console.find("#children-section .error").text and console.find_all("#children a") == []
    finally:
        console.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes([200, 40, 40]) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_binary_shows_as_a_hex_dump_and_an_image_inline(console, served, storage):
    _, service = served
    key = f"executions/{DEMO}/r/s/blob.bin"
    service.put(key, bytes(range(256)) * 4, None, content_type="application/octet-stream")
    console.open("#/o/" + key, view="object")
    preview = console.find("#preview-text")
    assert preview.get_attribute("data-kind") == "hex"
    assert preview.text.splitlines()[1].startswith("00000010  10 11 12 13")
    console.screenshot(f"object-hex-{storage.kind}", full=True)
    one_byte = f"executions/{DEMO}/r/s/one.bin"
    service.put(one_byte, b"\xff", None, content_type="application/octet-stream")
    console.open("#/o/" + one_byte, view="object")
    console.find("#preview-text")
    notes = [p.text for p in console.driver.find_elements("css selector", "#preview p.muted")]
    assert "binary: the first 1 byte as hex" in notes, notes
    image = f"executions/{DEMO}/r/s/chart.png"
    service.put(image, png(40, 30), None, content_type="image/png")
    console.open("#/o/" + image, view="object")
    console.wait_for(lambda: console.driver.execute_script(
        "const img = document.getElementById('preview-image'); return img.complete && img.naturalWidth") == 40)


def test_stored_html_and_svg_cannot_run_script_in_the_console(console, served, storage):
    url, service = served
    html_key = f"executions/{DEMO}/evil/page/index.html"
    svg_key = f"executions/{DEMO}/evil/page/image.svg"
    service.put(html_key, EVIL_HTML, None, content_type="text/html")
    service.put(svg_key, EVIL_SVG, None, content_type="image/svg+xml")
    for key in (html_key, svg_key):
        console.open("#/o/" + key, view="object")
        preview = console.find("#preview-text")
        assert preview.get_attribute("data-kind") == "source"
        assert "<script>" in preview.text  # the markup shown as its source
        # A control image that fails like the stored one's: once its onerror has run, the
        # stored markup's handlers, had it been rendered, would have run before it.
        console.driver.execute_script(
            "const img = document.createElement('img'); img.onerror = () => { window.__control = 1; };"
            "img.src = 'x'; document.body.appendChild(img);")
        console.wait_for(lambda: console.driver.execute_script("return window.__control === 1"), timeout=60)
        assert console.driver.execute_script("return window.pwned === undefined")
        assert console.driver.title == "factflow console"
    console.screenshot(f"object-html-source-{storage.kind}", full=True)
    reply = http_request(url, "GET", "/api/v1/storage/objects?prefix=executions/evil/")
    assert reply.json()["objects"] == []


def test_live_writes_appear_without_a_reload_and_the_finish_shows(console, served, storage):
    _, service = served
    execution = "live-console"
    service.set_execution_status(execution, "running")
    service.put(f"executions/{execution}/route/stage/first.json", b"{}", None)
    console.open(f"#/e/{execution}", view="execution")
    console.wait_for(lambda: console.find("#live").get_attribute("data-state") == "open")
    console.wait_for(lambda: console.find("#live-count").text == "1")
    # How soon they appear is measured in bench/, not here: a loaded machine is slow.
    for number in range(3):
        key = f"executions/{execution}/route/stage/msg-{number}.json"
        cli(storage, "storage", "put", key, stdin=b'{"n": %d}' % number)
        console.wait_for(lambda key=key: console.find_all(f'#live-list li[data-key="{key}"]'))
    assert console.find("#live-count").text == "4"
    assert console.find("#live-list li").get_attribute("data-key").endswith("msg-2.json")  # newest first
    console.screenshot(f"live-{storage.kind}")
    cli(storage, "execution", "finish", execution)
    console.wait_for(lambda: console.find("#live").get_attribute("data-state") == "finished")
    assert console.find("#execution-status [data-status]").text == "completed"
    console.screenshot(f"live-finished-{storage.kind}")


def test_download_execution_zip_completes(console, storage):
    console.open(f"#/e/{DEMO}", view="execution")
    console.find("#archive-start").click()
    console.wait_for(lambda: console.find("#archive").get_attribute("data-state") == "ready")
    assert console.find("#archive-progress").get_attribute("value") == "1"
    saved = console.downloaded()
    console.screenshot(f"archive-{storage.kind}")
    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
    assert sum(name.endswith((".json", ".md", ".html.gz")) and "/_factflow" not in name and ".meta." not in name
               for name in names) >= 16, names
    assert any(name.endswith("markdown_processor/chunker/msg-0002.json") for name in names)


@pytest.fixture
def token_served(storage):
    cli(storage, "demo", "--execution", DEMO)
    with storage.open() as provider, running_server(StorageService(provider), token=TOKEN) as url:
        yield url


def test_token_login_sets_an_httponly_cookie_and_the_token_is_in_no_url(token_served, tmp_path, storage):
    console = make_console(tmp_path, token_served)
    try:
        console.open(f"#/e/{DEMO}", view="login")
        assert console.driver.current_url.endswith("#/login?next=%23%2Fe%2F" + DEMO)
        console.find("#token").send_keys("not-the-token")
        console.find("#login button").click()
        console.wait_for(lambda: "not this server" in console.find("#login-message").text)
        console.screenshot(f"login-{storage.kind}")
        console.find("#token").clear()
        console.find("#token").send_keys(TOKEN)
        console.find("#login button").click()
        console.wait_view("execution")
        assert console.find_all("#execution-status"), console.find("#main").text
        assert console.find("#execution-status [data-status]").text == "completed"
        # The cookie works for the API, EventSource and downloads alike; the page cannot read it.
        cookies = console.driver.execute_cdp_cmd("Network.getCookies", {})["cookies"]
        session = [cookie for cookie in cookies if cookie["name"] == "factflow_session"]
        assert len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
        assert TOKEN not in session[0]["value"]
        assert console.driver.execute_script("return document.cookie") == ""
        console.open("#/o/" + CHUNK, view="object")
        assert console.find("#preview-json")
        urls = console.requested_urls() + [console.driver.current_url]
        assert len(urls) > 5 and not [url for url in urls if TOKEN in url]
        console.screenshot(f"after-login-{storage.kind}")
    finally:
        console.driver.quit()


def test_the_session_cookie_is_a_credential_only_while_valid(token_served, storage):
    login = http_request(token_served, "POST", "/api/v1/session", headers={"Content-Type": "application/json"},
                         body=b'{"token": "%s"}' % TOKEN.encode())
    assert login.status == 200
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    value = cookie.split(";")[0]
    assert http_request(token_served, "GET", "/api/v1/executions", headers={"Cookie": value}).status == 200
    forged = value[:-4] + ("0000" if not value.endswith("0000") else "1111")
    refused = http_request(token_served, "GET", "/api/v1/executions", headers={"Cookie": forged})
    assert refused.status == 401 and refused.json()["error_code"] == "unauthorized"
    wrong = http_request(token_served, "POST", "/api/v1/session", headers={"Content-Type": "application/json"},
                         body=b'{"token": "nope"}')
    assert wrong.status == 401 and "set-cookie" not in wrong.headers
    # A form post (what a foreign page could send without a preflight) is not a login.
    form = http_request(token_served, "POST", "/api/v1/session",
                        headers={"Content-Type": "application/x-www-form-urlencoded"}, body=b"token=" + TOKEN.encode())
    assert form.status == 400 and "set-cookie" not in form.headers
    # The page and its files need no credential; they hold no stored data.
    page = http_request(token_served, "GET", "/")
    assert page.status == 200 and b'src="/console/app.js"' in page.body
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert http_request(token_served, "GET", "/console/app.js").status == 200
    assert http_request(token_served, "GET", "/console/nope.js").status == 404


# -- retention: the execution view's Retention section ---------------------------------

REPLAY = "replay-console"
REPLAY_KEY = f"executions/{REPLAY}/route/stage/reuse.json"


def demo_objects(service) -> tuple[int, int]:
    infos = list(service.provider.list(f"executions/{DEMO}/"))
    return len(infos), sum(info.size for info in infos)


def facts(console) -> dict[str, str]:
    return {dd.get_attribute("data-fact"): dd.text for dd in console.find_all("#plan-facts dd")}


def plan(console, state: str = "planned") -> dict[str, str]:
    console.find("#retention-plan").click()
    console.wait_for(lambda: console.find("#retention").get_attribute("data-state") == state)
    return facts(console)


def test_retention_dry_run_changes_nothing_then_a_confirmed_delete_removes_the_execution(console, served, storage):
    url, service = served
    objects, size = demo_objects(service)
    assert objects == 16
    console.open(f"#/e/{DEMO}", view="execution")
    console.wait_for(lambda: console.find("#deps").get_attribute("data-state") == "ready")
    assert [p.text for p in console.find_all("#deps-dependants, #deps-depends-on")] == ["None known."] * 2
    shown = plan(console)
    assert (shown["objects"], shown["archive_jobs"], shown["action"]) == ("16", "0", "delete")
    assert shown["bytes"].endswith(f"({size} bytes)")
    assert console.find("#retention-text").text == "Dry run: nothing deleted."
    assert not console.find_all("#retention-force")  # nothing blocks it: no force offered
    console.screenshot(f"retention-plan-{storage.kind}", full=True)
    # The dry run changed nothing: the same objects, the record, no deletion record.
    assert demo_objects(service) == (objects, size)
    assert service.provider.read_execution(DEMO)["status"] == "completed"
    assert http_request(url, "GET", "/api/v1/deletions").json() == {"deletions": []}
    # Delete… asks first; Cancel leaves everything as it was.
    console.find("#retention-delete").click()
    question = console.find("#retention-question").text
    assert f"Delete {DEMO} permanently: 16 objects" in question and "cannot be undone" in question
    console.screenshot(f"retention-confirm-{storage.kind}", full=True)
    console.find("#retention-cancel").click()
    assert not console.find("#retention-confirm").is_displayed()
    assert demo_objects(service) == (objects, size)
    console.find("#retention-delete").click()
    console.find("#retention-confirm-yes").click()
    console.wait_for(lambda: console.find("#retention").get_attribute("data-state") == "deleted")
    assert console.find("#retention-done").text.startswith("Deleted 16 objects")
    assert console.find("#execution-status [data-status]").text == "deleted"
    assert not console.find_all("#archive-start") and not console.find_all("#deps")
    console.screenshot(f"retention-deleted-{storage.kind}", full=True)
    assert demo_objects(service) == (0, 0)
    assert service.provider.read_execution(DEMO) is None
    console.find("#retention-done a").click()
    console.wait_view("executions")
    assert not console.find_all(f'tr[data-execution="{DEMO}"]')
    # The execution's URL now says who deleted it and when.
    console.open(f"#/e/{DEMO}", view="execution")
    record = console.wait_for(lambda: console.find("#deletion-record"))
    assert record.get_attribute("data-state") == "deleted" and "16 objects" in record.text


def test_retention_blocked_delete_shows_dependants_and_force_is_separate(console, served, storage):
    _, service = served
    service.put(REPLAY_KEY, b'{"reused": true}', {"lineage": [CHUNK]}, content_type="application/json")
    service.set_execution_status(REPLAY, "completed")
    console.open(f"#/e/{DEMO}", view="execution")
    console.wait_for(lambda: console.find("#deps").get_attribute("data-state") == "ready")
    [row] = console.find_all("#deps-dependants tbody tr")
    assert (row.get_attribute("data-execution"), row.get_attribute("data-key")) == (REPLAY, REPLAY_KEY)
    assert [cell.text for cell in row.find_elements(By.TAG_NAME, "td")] == [REPLAY, REPLAY_KEY, CHUNK]
    shown = plan(console)
    assert shown["action"] == "blocked by lineage" and shown["objects"] == "16"
    [broken] = console.find_all("#plan-dependants tbody tr")
    assert broken.get_attribute("data-key") == REPLAY_KEY
    assert "Blocked" in console.find("#retention-blocked").text
    delete = console.find("#retention-delete")
    force = console.find("#retention-force")
    assert not delete.is_enabled() and not force.is_selected()
    assert console.find("label.force").text.endswith("break the lineage of 1 object")
    console.screenshot(f"retention-blocked-{storage.kind}", full=True)
    assert demo_objects(service)[0] == 16
    # The other side: the replay depends on the demo.
    console.open(f"#/e/{REPLAY}", view="execution")
    console.wait_for(lambda: console.find("#deps").get_attribute("data-state") == "ready")
    [uses] = console.find_all("#deps-depends-on tbody tr")
    assert [cell.text for cell in uses.find_elements(By.TAG_NAME, "td")] == [DEMO, CHUNK, REPLAY_KEY]
    console.screenshot(f"retention-deps-{storage.kind}", full=True)
    # Forcing takes the box and the confirmation.
    console.open(f"#/e/{DEMO}", view="execution")
    plan(console)
    console.find("#retention-force").click()
    console.find("#retention-delete").click()
    assert "breaking other executions' lineage" in console.find("#retention-question").text
    console.find("#retention-confirm-yes").click()
    console.wait_for(lambda: console.find("#retention").get_attribute("data-state") == "deleted")
    assert demo_objects(service) == (0, 0) and service.provider.read_execution(DEMO) is None
    assert service.provider.read_execution(REPLAY)["status"] == "completed"
    [record] = service.deletions()
    assert record["forced"] is True and record["state"] == "deleted"


def test_retention_an_interrupted_delete_shows_deleting_and_finishes(console, served, storage):
    from test_retention import CHILD

    url, service = served
    env = storage.cli_env()
    child = subprocess.run([sys.executable, "-c", CHILD, "record", DEMO], check=False, env=env,
                           capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    console.open("#/", view="executions")
    assert execution_row(console, DEMO)["status"] == "deleting"
    console.open(f"#/e/{DEMO}", view="execution")
    assert console.find("#execution-status [data-status]").text == "deleting"
    assert "it was completed" in console.find("#deleting-note").text
    assert not console.find_all("#archive-start")  # the server would refuse to pack it
    assert plan(console)["action"] == "resume"
    assert console.find("#retention-delete").text == "Finish the deletion…"
    console.screenshot(f"retention-deleting-{storage.kind}", full=True)
    console.find("#retention-delete").click()
    console.find("#retention-confirm-yes").click()
    console.wait_for(lambda: console.find("#retention").get_attribute("data-state") == "deleted")
    assert service.provider.read_execution(DEMO) is None
    assert http_request(url, "GET", "/api/v1/deletions").json()["deletions"][0]["state"] == "deleted"

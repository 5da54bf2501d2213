"""``storage du``, ``lineage``, ``diff``, ``get --to`` and ``list``/``browse`` paging and
human sizes: on every storage kind, in direct mode and over HTTP (same bytes, same exit
codes), and as a real subprocess."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import orjson

from cli_support import EXEC, HTML, MARKDOWN, SITEMAP, on_a_terminal
from factflow_storage.tools.du import DU

CHUNK = f"executions/{EXEC}/markdown_processor/chunker/msg-0001.json"
WEB = [f"executions/{EXEC}/sitemap_scraper/web_scraper/msg-{n:04d}.html.gz" for n in range(1, 6)]


def ok(modes, args):
    code, out, err = modes.both(args)
    assert code == 0 and err == b"", (code, err)
    return out


def copy_execution(provider, source: str, target: str) -> None:
    """The same bytes and metadata under another execution: a perfect replay."""
    for info in list(provider.list(f"executions/{source}/")):
        with provider.open(info.key) as stream:
            data, blob = stream.read(), stream.metadata
        key = f"executions/{target}/" + info.key[len(f"executions/{source}/"):]
        kept = {k: v for k, v in blob.items() if k not in ("key", "content_length", "checksum", "created_at",
                                                           "execution_id")}
        provider.write(key, data, kept, content_type=blob["content_type"])


# -- du ----------------------------------------------------------------------------------


def test_du_of_an_execution_per_route_and_stage(demo):
    usage = orjson.loads(ok(demo, ["storage", "du", "--execution", EXEC, "-o", "json"]))
    assert [(g["prefix"], g["objects"]) for g in usage["groups"]] == [
        ("markdown_processor/chunker/", 5), ("markdown_processor/html_to_markdown/", 5),
        ("sitemap_scraper/sitemap/", 1), ("sitemap_scraper/web_scraper/", 5)]
    with demo.storage.open() as provider:
        infos = list(provider.list(f"executions/{EXEC}/"))
    assert usage["objects"] == len(infos) == 16
    assert usage["bytes"] == sum(info.size for info in infos)
    web = next(g for g in usage["groups"] if g["prefix"] == "sitemap_scraper/web_scraper/")
    assert web["bytes"] == sum(info.size for info in infos if "/web_scraper/" in info.key)
    table = ok(demo, ["storage", "du", "--execution", EXEC, "--bytes"]).decode().splitlines()
    assert table[0].split() == ["OBJECTS", "SIZE", "PREFIX"]
    assert table[-1].split() == ["16", str(usage["bytes"]), "total", f"executions/{EXEC}/"]
    human = ok(demo, ["storage", "du", "--execution", EXEC]).decode().splitlines()
    assert human[-1].split()[:3] == ["16", f"{usage['bytes'] / 1024:.1f}", "KiB"]


def test_du_of_a_prefix_by_depth(demo):
    ok(demo, ["demo", "--execution", "ex2"])
    top = orjson.loads(ok(demo, ["storage", "du", "-o", "json"]))
    assert [(g["prefix"], g["objects"]) for g in top["groups"]] == [("executions/", 32)]
    per_execution = orjson.loads(ok(demo, ["storage", "du", "executions/", "-o", "json"]))
    assert [(g["prefix"], g["objects"]) for g in per_execution["groups"]] == [("ex1/", 16), ("ex2/", 16)]
    deep = orjson.loads(ok(demo, ["storage", "du", "executions/", "--depth", "2", "-o", "json"]))
    assert [g["prefix"] for g in deep["groups"]] == [
        "ex1/markdown_processor/", "ex1/sitemap_scraper/", "ex2/markdown_processor/", "ex2/sitemap_scraper/"]


def test_du_errors(demo):
    code, out, err = demo.both(["storage", "du", "--execution", "nope"])
    assert (code, out) == (1, b"") and err == b"Error: no execution 'nope' (no record and no objects)\n"
    assert demo.both(["storage", "du", "x/", "--execution", EXEC])[0] == 2
    assert demo.both(["storage", "du", "--depth", "0"])[0] == 2
    empty = orjson.loads(ok(demo, ["storage", "du", "nothing/", "-o", "json"]))
    assert (empty["groups"], empty["objects"], empty["bytes"]) == ([], 0, 0)


# -- lineage -----------------------------------------------------------------------------


def test_lineage_tree_of_ancestors(demo):
    lines = ok(demo, ["storage", "lineage", CHUNK]).decode().splitlines()
    assert lines == [
        CHUNK,
        f"└── {MARKDOWN}",
        f"    └── {WEB[0]}",
        f"        └── {SITEMAP}",
    ]
    tree = orjson.loads(ok(demo, ["storage", "lineage", CHUNK, "--depth", "1", "-o", "json"]))
    assert tree == {"key": CHUNK, "parents": [{"key": MARKDOWN, "truncated": True}]}


def test_lineage_children_within_the_execution(demo):
    tree = orjson.loads(ok(demo, ["storage", "lineage", SITEMAP, "--children", "-o", "json"]))
    assert tree == {"key": SITEMAP, "parents": [], "children": WEB}
    lines = ok(demo, ["storage", "lineage", SITEMAP, "--children"]).decode().splitlines()
    assert lines == [SITEMAP, "children (5):", *(f"  {key}" for key in WEB)]


def test_lineage_children_in_other_executions_come_from_the_reference_index(demo):
    replay = [f"executions/ex2/markdown_processor/chunker/msg-{n:04d}.json" for n in (1, 2, 3)]
    with demo.storage.open() as provider:
        provider.write(replay[0], b"{}", {"lineage": [SITEMAP, WEB[0]]})
        provider.write(replay[1], b"{}", {"lineage": SITEMAP})
        provider.write(replay[2], b"{}", {"lineage": [WEB[1]]})  # names another object of ex1
    tree = orjson.loads(ok(demo, ["storage", "lineage", SITEMAP, "--children", "-o", "json"]))
    assert tree["children"] == sorted(WEB + replay[:2])
    web = orjson.loads(ok(demo, ["storage", "lineage", WEB[1], "--children", "-o", "json"]))
    assert web["children"] == [f"executions/{EXEC}/markdown_processor/html_to_markdown/msg-0002.md", replay[2]]
    # The index keeps entries of objects deleted or rewritten since: those are no children.
    with demo.storage.open() as provider:
        provider.delete(replay[0])
        provider.write(replay[1], b"{}", {"lineage": [WEB[2]]})
    tree = orjson.loads(ok(demo, ["storage", "lineage", SITEMAP, "--children", "-o", "json"]))
    assert tree["children"] == WEB


def test_lineage_of_missing_parents_and_missing_objects(demo):
    with demo.storage.open() as provider:
        provider.write("loose/orphan.txt", b"x", {"lineage": ["gone/parent", "/not-a-key"]})
        provider.write("loose/self.txt", b"x", {"lineage": "loose/self.txt"})
    tree = orjson.loads(ok(demo, ["storage", "lineage", "loose/orphan.txt", "-o", "json"]))
    assert tree["parents"] == [{"key": "gone/parent", "missing": True}, {"key": "/not-a-key", "reference": True}]
    assert ok(demo, ["storage", "lineage", "loose/self.txt"]).decode().splitlines() == [
        "loose/self.txt", "└── loose/self.txt (cycle)"]
    code, out, err = demo.both(["storage", "lineage", "executions/ex1/none"])
    assert (code, out) == (1, b"") and b"no object" in err and len(err.splitlines()) == 1


# -- diff --------------------------------------------------------------------------------


def test_diff_of_a_perfect_replay_exits_0(demo):
    with demo.storage.open() as provider:
        copy_execution(provider, EXEC, "replay")
    code, out, err = demo.both(["storage", "diff", EXEC, "replay"])
    assert (code, err) == (0, b"")
    assert out == b"16 same, 0 differ, 0 only in A, 0 only in B\n"
    code, out, _ = demo.both(["storage", "diff", EXEC, "replay", "-o", "json"])
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert code == 0 and rows[-1] == {"summary": {"same": 16, "differs": 0, "only_a": 0, "only_b": 0}}
    assert [row["status"] for row in rows[:-1]] == ["same"] * 16


def test_diff_reports_each_kind_of_difference_and_exits_1(demo):
    with demo.storage.open() as provider:
        copy_execution(provider, EXEC, "replay")
        provider.write("executions/replay/markdown_processor/html_to_markdown/msg-0001.md",
                       b"# getting-started\n\nAbout something else.\n", None, content_type="text/markdown")
        provider.delete("executions/replay/markdown_processor/chunker/msg-0005.json")
        provider.write("executions/replay/markdown_processor/chunker/msg-0006.json", b"{}", None)
    code, out, err = demo.both(["storage", "diff", EXEC, "replay"])
    assert (code, err) == (1, b"")
    assert out.decode().splitlines() == [
        "only-a   markdown_processor/chunker/msg-0005.json",
        "only-b   markdown_processor/chunker/msg-0006.json",
        "differs  markdown_processor/html_to_markdown/msg-0001.md",
        "14 same, 1 differ, 1 only in A, 1 only in B",
    ]
    code, out, _ = demo.both(["storage", "diff", EXEC, "replay", "--route", "markdown_processor", "--content"])
    assert code == 1
    text = out.decode()
    assert "-About getting-started.\n+About something else.\n" in text
    assert text.endswith("8 same, 1 differ, 1 only in A, 1 only in B\n")
    code, out, _ = demo.both(["storage", "diff", EXEC, "replay", "--route", "sitemap_scraper"])
    assert (code, out) == (0, b"6 same, 0 differ, 0 only in A, 0 only in B\n")


def test_diff_content_of_json_points_at_the_member_that_changed(demo):
    with demo.storage.open() as provider:
        copy_execution(provider, EXEC, "replay")
        key = "executions/replay/sitemap_scraper/sitemap/sitemap.json"
        document = orjson.loads(provider.read(key))
        document["urls"][2] = "https://docs.example.com/moved"
        provider.write(key, orjson.dumps(document), None, content_type="application/json")
    code, out, _ = demo.both(["storage", "diff", EXEC, "replay", "--content"])
    assert code == 1
    changed = [line for line in out.decode().splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ['-    "https://docs.example.com/changelog",', '+    "https://docs.example.com/moved",']


def test_diff_errors_exit_2(demo):
    for args in (["storage", "diff", EXEC, "nope"], ["storage", "diff", "a/b", EXEC],
                 ["storage", "diff", EXEC, "nope", "-o", "json"]):
        code, out, err = demo.both(args)
        assert (code, out) == (2, b""), args
        assert err.startswith(b"Error: ") and len(err.splitlines()) == 1 and b"Traceback" not in err
    assert demo.both(["storage", "diff", EXEC])[0] == 2  # usage


def test_diff_as_a_subprocess_in_a_ci_script(file_storage, tmp_path):
    env = {**file_storage.cli_env(), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "factflow_storage", *args], env=env, capture_output=True, timeout=60)

    assert run("demo", "--execution", "a").returncode == 0
    with file_storage.open() as provider:
        copy_execution(provider, "a", "b")
    assert run("storage", "diff", "a", "b").returncode == 0
    assert run("demo", "--execution", "c").returncode == 0
    differ = run("storage", "diff", "a", "c")
    assert differ.returncode == 1 and b"differ" in differ.stdout
    missing = run("storage", "diff", "a", "zzz")
    assert missing.returncode == 2 and missing.stderr == b"Error: no execution 'zzz' (no record and no objects)\n"


# -- get --to, get -, -H, --start-after ------------------------------------------------------


def test_get_to_a_file_and_to_stdout(demo, tmp_path):
    target = tmp_path / "page.html.gz"
    target.write_bytes(b"old")
    for env in (demo.direct_env, demo.api_env):
        code, out, err = demo.run(env, ["storage", "get", HTML, "--to", str(target)])
        assert (code, out, err) == (0, b"", b"")
        assert gzip.decompress(target.read_bytes()).startswith(b"<html>")
        assert sorted(os.listdir(tmp_path)) == sorted(set(os.listdir(tmp_path)) - {n for n in os.listdir(tmp_path)
                                                                                   if n.endswith(".part")})
    assert ok(demo, ["storage", "get", MARKDOWN, "-"]) == b"# getting-started\n\nAbout getting-started.\n"
    assert demo.both(["storage", "get", MARKDOWN, "elsewhere"])[0] == 2


def test_get_to_a_file_of_a_missing_key_leaves_nothing(demo, tmp_path):
    target = tmp_path / "out" / "x.bin"
    target.parent.mkdir()
    code, out, err = demo.both(["storage", "get", "executions/ex1/none", "--to", str(target)])
    assert code == 1 and b"no object" in err
    assert os.listdir(target.parent) == []


def test_list_and_browse_human_sizes_and_start_after(demo):
    with demo.storage.open() as provider:
        provider.write("big/blob.bin", b"x" * 1536, None)
        provider.write("big/small.bin", b"x" * 10, None)
    lines = ok(demo, ["storage", "list", "--prefix", "big/", "-H"]).decode().splitlines()
    assert [line.split()[1:] for line in lines] == [["1.5", "KiB", "big/blob.bin"], ["10", "B", "big/small.bin"]]
    assert ok(demo, ["storage", "browse", "big/", "--human"]).decode().split()[1:4] == ["1.5", "KiB", "big/blob.bin"]
    listed = [orjson.loads(line)["key"] for line in
              ok(demo, ["storage", "list", "--execution", EXEC, "-o", "json"]).splitlines()]
    resumed = [orjson.loads(line)["key"] for line in ok(demo, [
        "storage", "list", "--execution", EXEC, "--start-after", listed[9], "-o", "json"]).splitlines()]
    assert resumed == listed[10:]
    paged = ok(demo, ["storage", "browse", "executions/", "--start-after", "executions/ex1/"])
    assert paged == b""
    assert ok(demo, ["storage", "browse", "executions/", "--start-after", "executions/a/"]).split() == [
        b"PRE", b"executions/ex1/"]


def test_list_metadata_table_shows_the_main_fields(demo):
    lines = ok(demo, ["storage", "list", "--execution", EXEC, "--stage", "chunker", "--metadata"]).decode().splitlines()
    assert len(lines) == 5
    assert all("content_type=application/json" in line and "adapter=chunker" in line and "checksum=sha256:" in line
               for line in lines)


# -- bounded memory, progress ----------------------------------------------------------------


def test_du_and_diff_memory_stays_flat_as_objects_grow(tmp_path):
    """From 500 to 5,000 objects, the peak memory of du and diff grows by a small part of
    what holding the listings would add. Peaks are noisy (thread timing, allocator), so
    each is the least of three runs and the margin is a share of a growth that is large
    by construction, never a fixed number of bytes."""
    import tracemalloc

    from factflow_storage import create_storage_provider
    from factflow_storage.service import StorageService

    provider = create_storage_provider(f"file://{tmp_path / 'storage'}", {"fsync": False})
    service = StorageService(provider)

    def fill(execution_id: str, count: int) -> None:
        for n in range(count):
            provider.write(f"executions/{execution_id}/r{n % 4}/s{n // 100 % 20}/m{n:06d}", b"x" * 10, None)

    def peak(run) -> int:
        peaks = []
        for _ in range(3):
            tracemalloc.start()
            try:
                run()
                peaks.append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
        return min(peaks)

    def growth(run) -> int:
        return peak(lambda: run("5000")) - peak(lambda: run("500"))

    for size in ("500", "5000"):
        fill(f"a{size}", int(size))
        fill(f"b{size}", int(size))
    assert service.call(DU, execution_id="a5000")["objects"] == 5000
    held = growth(lambda size: list(provider.list(f"executions/a{size}/")))
    assert held > 500 * 1024, held  # what keeping one listing adds: large, so shares of it are clear
    du = growth(lambda size: service.call(DU, execution_id=f"a{size}"))
    assert du < held // 4, (du, held)
    diff = growth(lambda size: sum(1 for _ in service.diff(f"a{size}", f"b{size}")))
    assert diff < held, (diff, held)  # diff would hold two listings: 2 x held


def test_get_to_a_file_shows_progress_on_a_terminal(file_storage, tmp_path):
    from factflow_storage.cli.get_file import PROGRESS_FROM

    data = os.urandom(PROGRESS_FROM + 1024 * 1024)
    with file_storage.open() as provider:
        provider.write("big/blob.bin", data, None)
    target = tmp_path / "blob.bin"
    env = {**file_storage.cli_env(), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    code, seen = on_a_terminal(env, "storage", "get", "big/blob.bin", "--to", str(target))
    assert code == 0
    assert b"blob.bin" in seen and b"100%" in seen
    assert target.read_bytes() == data
    piped = subprocess.run([sys.executable, "-m", "factflow_storage", "storage", "get", "big/blob.bin",
                            "--to", str(target)], env=env, capture_output=True, timeout=60)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, b"", b"")  # no bar off a terminal


# -- the HTTP routes themselves -------------------------------------------------------------


def test_tool_routes_answer_json_and_errors_in_the_error_shape(demo):
    from server_fixture import http_request

    base = "/api/v1/storage"
    usage = http_request(demo.url, "GET", f"{base}/du?execution_id={EXEC}")
    assert usage.status == 200 and usage.json()["objects"] == 16
    tree = http_request(demo.url, "GET", f"{base}/lineage?key={CHUNK}&depth=0")
    assert tree.status == 200 and tree.json() == {"key": CHUNK, "parents": [], "truncated": True}
    same = http_request(demo.url, "GET", f"{base}/diff?a={EXEC}&b={EXEC}")
    assert same.status == 200 and same.headers["content-type"] == "application/x-ndjson"
    assert orjson.loads(same.body.splitlines()[-1]) == {"summary": {"same": 16, "differs": 0, "only_a": 0,
                                                                   "only_b": 0}}
    for path, status, code in ((f"{base}/diff?a={EXEC}", 400, "bad_request"),
                               (f"{base}/diff?a={EXEC}&b=nope", 404, "not_found"),
                               (f"{base}/du?depth=abc", 400, "bad_request"),
                               (f"{base}/du?depth=", 400, "bad_request"),
                               (f"{base}/lineage?key={CHUNK}&depth=", 400, "bad_request"),
                               (f"{base}/du?depth=99", 400, "bad_request"),
                               (f"{base}/du?prefix=a//b", 400, "invalid_key"),
                               (f"{base}/lineage?key=executions/{EXEC}/none", 404, "not_found"),
                               (f"{base}/lineage", 400, "bad_request")):
        reply = http_request(demo.url, "GET", path)
        assert reply.status == status, (path, reply.body)
        body = reply.json()
        assert set(body) == {"detail", "error_code", "timestamp"} and body["error_code"] == code, path

"""The pipeline graph (``execution graph``, ``GET /api/v1/executions/{id}/graph``) and the
list API's name filters, on every storage kind, in direct mode and over HTTP."""

from __future__ import annotations

import orjson

from cli_support import EXEC
from server_fixture import http_request

STAGES = {"markdown_processor/chunker": 5, "markdown_processor/html_to_markdown": 5,
          "sitemap_scraper/sitemap": 1, "sitemap_scraper/web_scraper": 5}
EDGES = [("markdown_processor/html_to_markdown", "markdown_processor/chunker"),
         ("sitemap_scraper/sitemap", "sitemap_scraper/web_scraper"),
         ("sitemap_scraper/web_scraper", "markdown_processor/html_to_markdown")]


def ok(modes, args):
    code, out, err = modes.both(args)
    assert code == 0 and err == b"", (code, err)
    return out


def test_the_demo_graph_has_four_stages_and_three_edges_in_every_form(demo):
    graph = orjson.loads(ok(demo, ["execution", "graph", EXEC, "-o", "json"]))
    assert {node["id"]: node["objects"] for node in graph["nodes"]} == STAGES
    assert sorted((edge["from"], edge["to"]) for edge in graph["edges"]) == EDGES
    assert graph["status"] == "completed" and not any(node["receiving"] for node in graph["nodes"])
    usage = orjson.loads(ok(demo, ["storage", "du", "--execution", EXEC, "-o", "json"]))
    assert {g["prefix"].rstrip("/"): g["bytes"] for g in usage["groups"]} == \
        {node["id"]: node["bytes"] for node in graph["nodes"]}
    text = ok(demo, ["execution", "graph", EXEC]).decode().splitlines()
    assert text[0] == f"execution {EXEC} (completed): 4 stages, 3 edges"
    assert "  sitemap_scraper/sitemap -> sitemap_scraper/web_scraper" in text
    dot = ok(demo, ["execution", "graph", EXEC, "--output", "dot"]).decode()
    assert dot.startswith(f'digraph "{EXEC}" {{') and dot.endswith("}\n")
    assert dot.count(" -> ") == 3 and '"sitemap_scraper/sitemap" -> "sitemap_scraper/web_scraper";' in dot
    reply = http_request(demo.url, "GET", f"/api/v1/executions/{EXEC}/graph")
    assert reply.status == 200 and reply.json() == graph
    with demo.storage.open() as provider:  # one marker per stage pair, not one per object
        assert len(list(provider.list_records(f"graph/{EXEC}/"))) == 3


def test_graph_errors(demo):
    code, out, err = demo.both(["execution", "graph", "nope"])
    assert (code, out, err) == (1, b"", b"Error: no execution 'nope'\n")
    assert demo.both(["execution", "graph", EXEC, "-o", "svg"])[0] == 2
    reply = http_request(demo.url, "POST", f"/api/v1/executions/{EXEC}/graph")
    assert reply.status == 405 and reply.headers["allow"] == "GET"


def test_an_edge_from_another_execution_names_it_and_deletion_takes_the_edges(demo):
    parent = f"executions/{EXEC}/sitemap_scraper/sitemap/sitemap.json"
    with demo.storage.open() as provider:
        provider.write("executions/replay/enrich/summary/msg-0001.json", b"{}", {"lineage": [parent]})
        provider.write("executions/replay/enrich/summary/msg-0002.json", b"{}", {"lineage": [parent]})
    graph = orjson.loads(ok(demo, ["execution", "graph", "replay", "-o", "json"]))
    assert graph["edges"] == [{"from": f"{EXEC}:sitemap_scraper/sitemap", "to": "enrich/summary",
                               "from_execution": EXEC}]
    outside = next(node for node in graph["nodes"] if node["id"] == f"{EXEC}:sitemap_scraper/sitemap")
    assert (outside["execution_id"], outside["objects"]) == (EXEC, 0)
    code, _, err = demo.run(demo.direct_env, ["execution", "delete", EXEC, "--yes", "--force"])
    assert code == 0, err
    with demo.storage.open() as provider:
        assert list(provider.list_records(f"graph/{EXEC}/")) == []
        assert list(provider.list_records("graph/replay/")) != []


def test_the_list_api_filters_names_on_the_server_and_jumps_with_start_after(demo):
    stage = f"executions/{EXEC}/sitemap_scraper/web_scraper/"

    def keys(query: str) -> list[str]:
        reply = http_request(demo.url, "GET", f"/api/v1/storage/objects?prefix={stage}&delimiter=/&"
                                              f"include_metadata=false&{query}")
        assert reply.status == 200, reply.body
        return [row["key"][len(stage):] for row in reply.json()["objects"]]

    assert keys("contains=0003") == ["msg-0003.html.gz"]
    assert keys("match=msg-000%5B24%5D.*") == ["msg-0002.html.gz", "msg-0004.html.gz"]
    assert keys("match=msg-0003") == []  # a glob matches the whole name
    assert keys(f"start_after={stage}msg-0003.html.gz") == ["msg-0004.html.gz", "msg-0005.html.gz"]
    top = http_request(demo.url, "GET", f"/api/v1/storage/objects?prefix=executions/{EXEC}/&delimiter=/&contains=map")
    assert top.json()["common_prefixes"] == [f"executions/{EXEC}/sitemap_scraper/"]
    both = http_request(demo.url, "GET", f"/api/v1/storage/objects?prefix={stage}&cursor=abc&start_after=x")
    assert both.status == 400 and both.json()["error_code"]


def test_storage_list_filters_names_the_same_in_both_modes_across_bounded_scans(demo, monkeypatch):
    from factflow_storage import service as service_module

    monkeypatch.setattr(service_module, "SCAN_LIMIT", 3)  # the server answers many short, even empty, pages
    rows = ok(demo, ["storage", "list", "--execution", EXEC, "--match", "*/chunker/msg-000[1-3].json", "-o", "json"])
    assert [orjson.loads(line)["key"].rsplit("/", 2)[-2:] for line in rows.splitlines()] == [
        ["chunker", f"msg-000{n}.json"] for n in (1, 2, 3)]
    one = ok(demo, ["storage", "list", "--execution", EXEC, "--contains", "web_scraper/msg-0005"]).decode()
    assert one.count("\n") == 1 and "web_scraper/msg-0005.html.gz" in one
    assert ok(demo, ["storage", "list", "--execution", EXEC, "--contains", "nothing-like-this"]) == b""

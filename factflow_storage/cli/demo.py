"""``factflow demo``: a realistic sample execution to explore."""

from __future__ import annotations

import gzip
import hashlib
from datetime import datetime, timezone

import click
import orjson

from factflow_storage.cli.options import App, output_option, pass_app
from factflow_storage.cli.render import JSON, emit_json, emit_lines
from factflow_storage.keys import build_key

PAGES = ("getting-started", "pricing", "changelog", "api/auth", "api/objects")
CONFIG_HASH = "sha256:" + hashlib.sha256(b"demo pipeline v1").hexdigest()


def _artefacts(execution_id: str):
    """(key, bytes, content_type, metadata) for a sitemap -> scrape -> markdown -> chunk run."""
    sitemap_key = build_key(execution_id, "sitemap_scraper", "sitemap", "sitemap.json")
    urls = [f"https://docs.example.com/{page}" for page in PAGES]
    yield sitemap_key, orjson.dumps({"source": "https://docs.example.com/sitemap.xml", "urls": urls}), \
        "application/json", {"adapter": "sitemap_scraper", "config_hash": CONFIG_HASH}
    for number, (page, url) in enumerate(zip(PAGES, urls, strict=True), start=1):
        msg_id = f"msg-{number:04d}"
        html_key = build_key(execution_id, "sitemap_scraper", "web_scraper", f"{msg_id}.html.gz")
        html = f"<html><head><title>{page}</title></head><body><h1>{page}</h1><p>About {page}.</p></body></html>"
        yield html_key, gzip.compress(html.encode(), mtime=0), "application/gzip", {
            "adapter": "web_scraper", "config_hash": CONFIG_HASH, "lineage": [sitemap_key],
            "source_url": url, "http_status": 200, "content_encoding": "gzip"}
        md_key = build_key(execution_id, "markdown_processor", "html_to_markdown", f"{msg_id}.md")
        markdown = f"# {page}\n\nAbout {page}.\n"
        yield md_key, markdown.encode(), "text/markdown", {
            "adapter": "markdown_processor", "config_hash": CONFIG_HASH, "lineage": [html_key]}
        chunk_key = build_key(execution_id, "markdown_processor", "chunker", f"{msg_id}.json")
        chunks = [{"index": 0, "text": markdown.strip(), "tokens": len(markdown.split())}]
        yield chunk_key, orjson.dumps({"source": md_key, "chunks": chunks}), "application/json", {
            "adapter": "chunker", "config_hash": CONFIG_HASH, "lineage": [md_key]}


@click.command("demo")
@click.option("--execution", "execution_id", default=None, metavar="ID",
              help="Execution id (default: demo-<UTC timestamp>).")
@output_option
@pass_app
def command(app: App, execution_id: str | None, output: str | None) -> None:
    """Write a sample execution (two routes, four stages, JSON, text and binary objects) to storage."""
    execution_id = execution_id or datetime.now(timezone.utc).strftime("demo-%Y%m%dT%H%M%SZ")
    service = app.service
    service.set_execution_status(execution_id, "running")
    keys = []
    for key, data, content_type, metadata in _artefacts(execution_id):
        service.put(key, data, metadata, content_type=content_type)
        keys.append(key)
    record = service.set_execution_status(execution_id, "completed")
    if app.fmt(output) == JSON:
        emit_json({"execution": record, "keys": keys})
        return
    from factflow_storage.cli.invocation import shown_command

    me = shown_command()  # as it was run: a pyz is not on PATH as `factflow`
    emit_lines([
        f"wrote {len(keys)} objects for execution {execution_id} (status {record['status']})",
        "",
        "try next:",
        f"  {me} storage browse executions/{execution_id}/",
        f"  {me} storage list --execution {execution_id}",
        f"  {me} storage get {keys[-1]} --output json",
        f"  {me} storage metadata {keys[1]}",
        f"  {me} storage get {keys[1]} > page.html.gz",
        f"  {me} storage download {execution_id} --output-dir ./out/",
    ])

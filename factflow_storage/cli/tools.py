"""``factflow storage du | lineage | diff``: how big, where from, and did a replay
produce the same thing. The work is in ``factflow_storage.tools``; this renders it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import click

from factflow_storage.cli.progress import human_bytes as human_size
from factflow_storage.cli.options import App, output_option, pass_app
from factflow_storage.cli.render import JSON, emit_json, emit_lines, emit_ndjson, table_lines
from factflow_storage.errors import StorageError
from factflow_storage.tools.execution_check import require_execution

EXIT_SAME, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2
_DIFF_LABELS = {"same": "same", "differs": "differs", "only_a": "only-a", "only_b": "only-b"}


@click.command("du", epilog="""\b
Examples:
  factflow storage du --execution demo-1
  factflow storage du executions/ --depth 1 --bytes""")
@click.argument("prefix", default="")
@click.option("--execution", "execution_id", metavar="ID", help="Sizes per route and stage of one execution.")
@click.option("--depth", type=click.IntRange(1, 16), default=None,
              help="Prefix levels per line (route/stage under an execution, else 1).")
@click.option("--bytes", "raw_bytes", is_flag=True, help="Exact byte counts instead of KiB/MiB.")
@output_option
@pass_app
def du(app: App, prefix: str, execution_id: str | None, depth: int | None, raw_bytes: bool,
       output: str | None) -> None:
    """Objects and bytes per route and stage (or per prefix level), with a total."""
    if execution_id and prefix:
        raise click.UsageError("give PREFIX or --execution, not both")
    if execution_id:
        require_execution(app.service, execution_id)
    from factflow_storage.tools.du import DU

    usage = app.service.call(DU, prefix, execution_id=execution_id, depth=depth)
    if app.fmt(output) == JSON:
        emit_json(usage)
        return
    shown = str if raw_bytes else human_size
    rows = [{"objects": str(g["objects"]), "size": shown(g["bytes"]), "prefix": g["prefix"]} for g in usage["groups"]]
    rows.append({"objects": str(usage["objects"]), "size": shown(usage["bytes"]), "prefix": f"total {usage['prefix']}"})
    emit_lines(table_lines(rows, ("objects", "size", "prefix")))


@click.command("lineage", epilog="""\b
Examples:
  factflow storage lineage executions/demo-1/markdown_processor/chunker/msg-0001.json
  factflow storage lineage executions/demo-1/sitemap_scraper/sitemap/sitemap.json --children""")
@click.argument("key")
@click.option("--depth", type=click.IntRange(0, 100), default=None, help="Levels of ancestors (10 by default).")
@click.option("--children", is_flag=True, help="Also list the objects whose lineage names KEY.")
@output_option
@pass_app
def lineage(app: App, key: str, depth: int | None, children: bool, output: str | None) -> None:
    """The object's ancestors (its lineage metadata, followed upwards) as a tree."""
    from factflow_storage.keys import validate_key
    from factflow_storage.operations.catalog import LINEAGE
    from factflow_storage.tools.lineage import tree_lines

    tree = app.service.call(LINEAGE, validate_key(key), depth=depth, children=children)
    if app.fmt(output) == JSON:
        emit_json(tree)
    else:
        emit_lines(tree_lines(tree))


@click.command("diff", epilog="""\b
Exit status: 0 when identical, 1 when they differ, 2 on error.
Examples:
  factflow storage diff run-1 replay-1
  factflow storage diff run-1 replay-1 --route markdown_processor --content""")
@click.argument("execution_a")
@click.argument("execution_b")
@click.option("--route", "route_id", default=None, help="Only this route.")
@click.option("--content", is_flag=True, help="Show a unified diff of differing text and JSON objects.")
@output_option
@pass_app
def diff(app: App, execution_a: str, execution_b: str, route_id: str | None, content: bool,
         output: str | None) -> None:
    """Compare two executions key by key (route/stage/msg): same, differs, only in A, only in B."""
    from factflow_storage.tools.diff import summary_line

    summary: dict[str, int] = {}
    try:
        rows = app.service.diff(execution_a, execution_b, route_id=route_id, content=content)
        if app.fmt(output) == JSON:
            def watched() -> Iterator[dict[str, Any]]:
                for row in rows:
                    summary.update(row.get("summary") or {})
                    yield row
            emit_ndjson(watched())
        else:
            emit_lines(_diff_lines(rows, summary, summary_line))
    except StorageError as err:
        click.echo(f"Error: {' '.join(str(err).split())}", err=True)
        sys.exit(EXIT_ERROR)
    different = any(count for status, count in summary.items() if status != "same")
    sys.exit(EXIT_DIFFERENT if different else EXIT_SAME)


def _diff_lines(rows: Iterable[dict[str, Any]], summary: dict[str, int],
                summary_line: Callable[[dict[str, int]], str]) -> Iterator[str]:
    """Only what differs, as ``diff -r`` does, then the counts."""
    for row in rows:
        if "summary" in row:
            summary.update(row["summary"])
            yield summary_line(row["summary"])
            continue
        if row["status"] == "same":
            continue
        yield f"{_DIFF_LABELS[row['status']]:<8} {row['key']}"
        if row.get("diff"):
            yield row["diff"].rstrip("\n")

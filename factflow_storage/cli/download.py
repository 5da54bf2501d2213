"""``factflow storage download EXEC_ID --output-dir DIR``: every artefact of an execution
as files, ``DIR/<key>`` and its sidecar ``DIR/<key>.meta.json``, each checked against its
sha256. Direct mode copies objects with a thread pool; with ``--api`` the server packs
them in an archive job. A re-run fetches only what is missing or differs."""

from __future__ import annotations

import sys

import click

from factflow_storage.cli.options import App, output_option, pass_app
from factflow_storage.cli.render import JSON, emit_json, emit_lines

DEFAULT_JOBS = 32
EXIT_INTERRUPTED = 130
INTERRUPTED = "download interrupted: run the same command again to fetch what is missing"


@click.command("download")
@click.argument("execution_id")
@click.option("--output-dir", "-d", required=True, metavar="DIR", help="Where the files go (created if missing).")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=DEFAULT_JOBS, show_default=True,
              help="Objects fetched at once (direct mode).")
@click.option("--no-metadata", is_flag=True, help="Skip the .meta.json sidecars.")
@click.option("--route", "routes", multiple=True, metavar="ROUTE", help="Only this route (repeatable).")
@click.option("--stage", "stages", multiple=True, metavar="STAGE", help="Only this stage (repeatable).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (there is none when stderr is not a terminal).")
@output_option
@pass_app
def command(app: App, execution_id: str, output_dir: str, jobs: int, no_metadata: bool,
            routes: tuple[str, ...], stages: tuple[str, ...], quiet: bool, output: str | None) -> None:
    """Download every object of EXECUTION_ID into DIR, keeping the key hierarchy."""
    from factflow_storage.download.fetch import Download, Selection
    from factflow_storage.cli.progress import ProgressBar, human_bytes
    from factflow_storage.download.tree import OutputTree
    from factflow_storage.errors import NotFound
    from factflow_storage.executions import refuse_deleting
    from factflow_storage.keys import execution_prefix, validate_segment

    execution_prefix(execution_id)
    for route in routes:
        validate_segment(route, "route")
    for stage in stages:
        validate_segment(stage, "stage")
    try:
        refuse_deleting(app.service.execution(execution_id), execution_id)
    except NotFound:
        pass  # objects without a record can still be downloaded
    selection = Selection(execution_id, routes, stages, include_metadata=not no_metadata)
    progress = ProgressBar(enabled=not quiet and sys.stderr.isatty())
    try:
        with OutputTree(output_dir) as tree:
            summary = Download(app.service, tree, selection, jobs=jobs, progress=progress, remote=app.remote).run()
    except KeyboardInterrupt:
        progress.finish()
        click.echo(INTERRUPTED, err=True)
        sys.exit(EXIT_INTERRUPTED)
    for conflict in summary.conflicts:
        click.echo(f"warning: {conflict['reason']}", err=True)
    if app.fmt(output) == JSON:
        emit_json(summary.to_json())
        return
    noun = "object" if summary.fetched == 1 else "objects"
    line = f"downloaded {summary.fetched} {noun} ({human_bytes(summary.bytes)}) to {summary.output_dir}"
    if summary.skipped:
        line += f"; {summary.skipped} already present"
    if summary.conflicts:
        line += f"; {len(summary.conflicts)} skipped (a file and a directory of one name)"
    emit_lines([line])

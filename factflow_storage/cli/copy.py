"""``factflow execution copy ID... --to URI`` and ``factflow storage copy PREFIX --to URI``:
executions (objects, metadata, lineage index, record) or any prefix, from the storage in
force to another store of any kind. With ``--api`` the server copies, and ``--to`` names
one of the destinations its operator configured: a server never opens a client's URI."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import click

from factflow_storage.cli.options import App, output_option, pass_app
from factflow_storage.cli.render import JSON, emit_json, emit_lines

if TYPE_CHECKING:
    from factflow_storage.store import Store

DEFAULT_JOBS = 32
EXIT_INTERRUPTED = 130
NO_URI_OVER_API = ("with --api, --to names one of the server's copy destinations (its operator configures them), "
                   "not a URI: a server never writes where a client points it")
INTERRUPTED = "copy interrupted: run the same command again to copy what is missing"


def copy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((
        click.option("--to", "destination", required=True, metavar="URI",
                     help="Destination storage URI: file://PATH, minio://BUCKET[/prefix] or s3://...; "
                          "with --api, the name of a destination the server's operator configured."),
        click.option("--dry-run", is_flag=True, help="Say what would be copied (objects, bytes) and copy nothing."),
        click.option("--jobs", "-j", type=click.IntRange(1, 256), default=DEFAULT_JOBS, show_default=True,
                     help="Objects copied at once."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar (there is none when stderr is not a terminal)."),
    )):
        command = option(command)
    return output_option(command)


def _open_destination(app: App, uri: str) -> Store:
    from factflow_storage.registry import create_storage_provider

    # No write journal: nobody follows a copy live, and it would double the requests.
    return create_storage_provider(uri, app.settings.provider_options(uri), hooks=False)


def _source(app: App) -> Store:
    return app.provider


def _run(app: App, dest: Store, plans: list, warnings: list[str], dry_run: bool, jobs: int,
         quiet: bool, output: str | None) -> None:
    from factflow_storage.cli.progress import ProgressBar
    from factflow_storage.copying.run import run_plans, summary

    source = _source(app)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if not dry_run:
        progress = ProgressBar(enabled=not quiet and sys.stderr.isatty())
        try:
            run_plans(source, dest, plans, jobs=jobs, start=progress.start,
                      advance=lambda objects, nbytes: progress.advance(objects, nbytes))
        except KeyboardInterrupt:
            progress.finish()
            click.echo(INTERRUPTED, err=True)
            sys.exit(EXIT_INTERRUPTED)
        progress.finish()
    _show(app, summary(source, dest, plans, warnings, dry_run=dry_run), output)


def _remote(app: App, request: dict[str, Any], output: str | None) -> None:
    """The server copies to the destination its settings call ``request["destination"]``."""
    if "://" in request["destination"]:
        raise click.ClickException(NO_URI_OVER_API)
    result = app.service.copy(request)
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    _show(app, result, output)


def _show(app: App, result: Mapping[str, Any], output: str | None) -> None:
    from factflow_storage.cli.progress import human_bytes

    dry_run = result["dry_run"]
    if app.fmt(output) == JSON:
        emit_json(result)
        return
    totals = result["totals"]
    verb = "would copy" if dry_run else "copied"
    lines = []
    for row in result.get("executions", []):
        lines.append(f"execution {row['execution_id']}: {verb} {row['copied']} of {row['objects']} objects "
                     f"({human_bytes(row['copied_bytes'])}), record {row['record']}")
    if dry_run:
        lines.append(f"dry run: would copy {totals['copied']} objects ({human_bytes(totals['copied_bytes'])}) "
                     f"to {result['destination']}; {totals['present']} already there")
    else:
        lines.append(f"{totals['copied']} objects copied ({human_bytes(totals['copied_bytes'])}) to "
                     f"{result['destination']}; "
                     f"{totals['present']} already there")
    emit_lines(lines)


@click.command("copy", epilog="""\b
Examples:
  factflow execution copy run-42 --to minio://prod-bucket
  factflow --storage minio://prod-bucket execution copy run-42 --to file://./local --with-parents
  factflow execution copy run-41 run-42 --to s3://other-bucket --dry-run""")
@click.argument("execution_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--with-parents", is_flag=True, help="Also copy the executions whose objects these name in lineage.")
@click.option("--force", is_flag=True, help="Replace an execution the destination holds for another run.")
@copy_options
@pass_app
def execution_copy(app: App, execution_ids: tuple[str, ...], with_parents: bool, force: bool, destination: str,
                   dry_run: bool, jobs: int, quiet: bool, output: str | None) -> None:
    """Copy executions whole (objects, metadata, lineage index, record) to another store."""
    from factflow_storage.copying.run import plan_executions

    if app.remote:
        _remote(app, {"execution_ids": list(execution_ids), "destination": destination, "dry_run": dry_run,
                      "force": force, "with_parents": with_parents, "jobs": jobs}, output)
        return
    dest = _open_destination(app, destination)
    try:
        plans, warnings = plan_executions(_source(app), dest, execution_ids, jobs=jobs, force=force,
                                          with_parents=with_parents)
        _run(app, dest, plans, warnings, dry_run, jobs, quiet, output)
    finally:
        dest.close()


@click.command("copy", epilog="""\b
Examples:
  factflow storage copy reference/ --to minio://prod-bucket
  factflow storage copy '' --to file://./everything --dry-run""")
@click.argument("prefix")
@copy_options
@pass_app
def storage_copy(app: App, prefix: str, destination: str, dry_run: bool, jobs: int, quiet: bool,
                 output: str | None) -> None:
    """Copy every object under PREFIX, with its metadata, to another store (no records)."""
    from factflow_storage.copying.plan import plan_prefix
    from factflow_storage.copying.run import SAME_STORE
    from factflow_storage.errors import BadRequest

    if app.remote:
        _remote(app, {"prefix": prefix, "destination": destination, "dry_run": dry_run, "jobs": jobs}, output)
        return
    dest = _open_destination(app, destination)
    try:
        source = _source(app)
        if source.uri == dest.uri:
            raise BadRequest(SAME_STORE.format(dest=dest.uri))
        plan = plan_prefix(source, dest, prefix, jobs=jobs)
        _run(app, dest, [plan], [], dry_run, jobs, quiet, output)
    finally:
        dest.close()

"""``factflow storage watch``: replay an execution's objects, then follow its writes live.

Direct mode runs the watch loop in process; with ``--api`` it reads the server's SSE
stream and resumes with ``Last-Event-ID`` after a dropped connection. Both print the
same lines, flushed one by one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence

import click

from factflow_storage.cli.options import App, Duration, output_option, pass_app
from factflow_storage.cli.render import JSON, json_bytes
from factflow_storage.errors import Deleted, NotFound
from factflow_storage.executions import refuse_deleting

WAITING = ("waiting for execution {} to start: it has no record yet (a mistyped id waits forever; "
           "Ctrl+C to stop, or --timeout)")
TIMED_OUT = "timed out after {} waiting for execution {} to finish"
NEVER_STARTED = "timed out after {} waiting for execution {} to start: it has no record"
EXIT_NOT_COMPLETED = 3
EXIT_INTERRUPTED = 130


@click.command("watch")
@click.option("--execution", "execution_ids", multiple=True, required=True, metavar="ID",
              help="Execution to follow (repeat for several).")
@click.option("--route", "route_id", default=None, help="Only this route.")
@click.option("--stage", default=None, help="Only this stage.")
@click.option("--timeout", type=Duration(), default=None, help="Give up after this long: 30s, 5m, 1h.")
@output_option
@pass_app
def command(app: App, execution_ids: Sequence[str], route_id: str | None, stage: str | None,
            timeout: float | None, output: str | None) -> None:
    """Print the execution's objects, then each new one as it lands, until it finishes."""
    timeout = timeout if timeout is not None else app.timeout
    for execution_id in execution_ids:
        try:
            refuse_deleting(app.service.execution(execution_id), execution_id)
        except Deleted:
            raise
        except NotFound:
            click.echo(WAITING.format(execution_id), err=True)
    try:
        statuses = _print_events(_events(app, execution_ids, route_id, stage, timeout), app.fmt(output) == JSON)
    except KeyboardInterrupt:
        # Ctrl+C is how a watch is meant to be left: no traceback, no "Aborted!".
        sys.exit(EXIT_INTERRUPTED)
    missing = [e for e in execution_ids if e not in statuses]
    if missing:
        raise click.ClickException(_timed_out(app, timeout, missing[0]))
    if any(status != "completed" for status in statuses.values()):
        sys.exit(EXIT_NOT_COMPLETED)


def _print_events(events: Iterator, as_json: bool) -> dict[str, str]:
    out = sys.stdout.buffer
    statuses: dict[str, str] = {}
    for event in events:
        row = event.row()
        if as_json:
            out.write(json_bytes(row) + b"\n")
        elif "key" in row:
            out.write(f"{row['created_at']:<24} {row['size']:>12} {row['key']}\n".encode("utf-8", "replace"))
        else:
            out.write(f"execution {row['execution_id']} {row['status']}\n".encode())
        out.flush()
        if "status" in row:
            statuses[row["execution_id"]] = row["status"]
    return statuses


def _events(app: App, execution_ids: Sequence[str], route_id: str | None, stage: str | None,
            timeout: float | None) -> Iterator:
    for event in app.watch_service().watch(execution_ids, route_id=route_id, stage=stage, timeout=timeout):
        if event is not None:
            yield event


def _timed_out(app: App, timeout: float | None, execution_id: str) -> str:
    try:
        app.service.execution(execution_id)
    except NotFound:
        return NEVER_STARTED.format(_shown(timeout), execution_id)
    return TIMED_OUT.format(_shown(timeout), execution_id)


def _shown(seconds: float | None) -> str:
    if seconds is None:
        return "no limit"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def wait_for(app: App, execution_id: str, timeout: float | None, interval: float = 0.25) -> dict:
    """Poll the execution record until it is terminal; used by ``execution wait``."""
    from factflow_storage.executions import is_terminal

    try:
        return _poll_record(app, execution_id, timeout, interval, is_terminal)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


def _poll_record(app: App, execution_id: str, timeout: float | None, interval: float, is_terminal) -> dict:
    deadline = None if timeout is None else time.monotonic() + timeout
    said_waiting = False
    while True:
        try:
            record = app.service.execution(execution_id)
        except Deleted:
            raise
        except NotFound:
            record = None
            if not said_waiting:
                click.echo(WAITING.format(execution_id), err=True)
                said_waiting = True
        if record is not None and is_terminal(record):
            return record
        if deadline is not None and time.monotonic() >= deadline:
            template = TIMED_OUT if record is not None else NEVER_STARTED
            raise click.ClickException(template.format(_shown(timeout), execution_id))
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))

"""``factflow storage ...``: browse, list, get, metadata, put, delete. Larger commands
(watch, download, fsck, prune, du, lineage, diff, copy) live in their own modules, imported
only when they run: ``storage get`` does not pay for the watch or the archive reader."""

from __future__ import annotations

import sys

import click
import orjson

from factflow_storage.cli.lazy import LazyCommands
from factflow_storage.cli.listing import (check_execution_prefix, human_option, listing_line, metadata_line,
                                          refuse_prefix, write_fs_rows)
from factflow_storage.cli.options import App, output_option, pass_app
from factflow_storage.cli.render import JSON, emit_json, emit_lines, emit_ndjson, field_lines, prefix_line
from factflow_storage.errors import BadRequest
from factflow_storage.keys import execution_prefix
from factflow_storage.tools.execution_check import require_execution

NOTHING_UNDER = "no objects under {prefix!r}"
NOTHING_STORED = "no objects in this storage"


class StorageGroup(LazyCommands, click.Group):
    # The line is what ``storage --help`` shows, as the root's (tests keep it in sync).
    lazy = {
        "copy": ("factflow_storage.cli.copy:storage_copy", "Copy every object under PREFIX, with its metadata, to another..."),
        "diff": ("factflow_storage.cli.tools:diff", "Compare two executions key by key (route/stage/msg): same,..."),
        "download": ("factflow_storage.cli.download:command",
                     "Download every object of EXECUTION_ID into DIR, keeping the key..."),
        "du": ("factflow_storage.cli.tools:du", "Objects and bytes per route and stage (or per prefix level),..."),
        "fsck": ("factflow_storage.cli.fsck:command", "Check the store under PREFIX: orphan temp files, sidecars that..."),
        "lineage": ("factflow_storage.cli.tools:lineage", "The object's ancestors (its lineage metadata, followed upwards)..."),
        "prune": ("factflow_storage.cli.retention:prune", "Delete old finished executions, skipping any a kept execution..."),
        "watch": ("factflow_storage.cli.watch:command", "Print the execution's objects, then each new one as it lands,..."),
    }

    def loaded(self, command: click.Command) -> None:
        from factflow_storage.cli import completion, examples

        completion.install(self)
        examples.install(self, (self.name or "storage",))


@click.group("storage", cls=StorageGroup)
def command() -> None:
    """Browse, read and write stored artefacts."""


@command.command(epilog="""\b
Examples:
  factflow storage browse executions/
  factflow storage browse executions/demo-1/sitemap_scraper/web_scraper/ -H""")
@click.argument("prefix", default="")
@human_option
@click.option("--start-after", metavar="KEY", default=None, help="Resume after this key or prefix.")
@output_option
@pass_app
def browse(app: App, prefix: str, human: bool, start_after: str | None, output: str | None) -> None:
    """One level under PREFIX: sub-prefixes and objects."""
    listing = app.service.browse(prefix, start_after=start_after)
    empty = not listing["common_prefixes"] and not listing["objects"] and not start_after
    if empty:
        check_execution_prefix(app.service, prefix)
    if app.fmt(output) == JSON:
        emit_json(listing)  # its empty lists say it
        return
    if empty:
        # A table of nothing reads like a typo or a hang: say which it was.
        click.echo(NOTHING_UNDER.format(prefix=prefix) if prefix else NOTHING_STORED, err=True)
    emit_lines([prefix_line(p) for p in listing["common_prefixes"]]
               + [listing_line(row, human) for row in listing["objects"]])


@command.command("list", epilog="""\b
Examples:
  factflow storage list --execution demo-1 --stage chunker
  factflow storage list --prefix executions/ --limit 100 --start-after executions/demo-1/z
  factflow storage list --execution demo-1 --match '*/chunker/msg-000[1-3].json'""")
@click.option("--execution", "execution_id", metavar="ID", help="List the objects of one execution.")
@click.option("--prefix", default=None, help="List the objects under a key prefix.")
@click.option("--route", "route_id", default=None, help="Only this route.")
@click.option("--stage", default=None, help="Only this stage.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N objects.")
@click.option("--start-after", metavar="KEY", default=None,
              help="Only keys after KEY (resume a listing from its last key).")
@click.option("--contains", metavar="TEXT", default=None, help="Only keys whose part past the prefix contains TEXT.")
@click.option("--match", metavar="GLOB", default=None, help="Only keys whose part past the prefix matches GLOB.")
@click.option("--metadata", "with_metadata", is_flag=True, help="Add each object's metadata (a read each).")
@human_option
@output_option
@pass_app
def list_(app: App, execution_id: str | None, prefix: str | None, route_id: str | None, stage: str | None,
          limit: int | None, start_after: str | None, contains: str | None, match: str | None, with_metadata: bool,
          human: bool, output: str | None) -> None:
    """Every object under an execution or a prefix, flat, in key order."""
    if execution_id and prefix is not None:
        raise click.UsageError("give --execution or --prefix, not both")
    if execution_id:
        prefix = execution_prefix(execution_id)
        require_execution(app.service, execution_id)
    json_out = app.fmt(output) == JSON
    unfiltered = route_id is None and stage is None and start_after is None and contains is None and match is None
    if json_out and unfiltered and not with_metadata and write_fs_rows(app, prefix or "", limit):
        return
    rows = app.service.list_rows(prefix or "", limit=limit, with_metadata=with_metadata,
                                 route_id=route_id, stage=stage, start_after=start_after, contains=contains,
                                 match=match)
    if json_out:
        emit_ndjson(rows)
    elif with_metadata:
        emit_lines(metadata_line(row, human) for row in rows)
    else:
        emit_lines(listing_line(row, human) for row in rows)


@command.command(epilog="""\b
Examples:
  factflow storage get executions/demo-1/markdown_processor/chunker/msg-0001.json
  factflow storage get executions/demo-1/sitemap_scraper/web_scraper/msg-0001.html.gz --to page.html.gz""")
@click.argument("key")
@click.argument("dest", required=False, metavar="[-]")
@click.option("--to", "to_file", metavar="FILE", help="Write to FILE atomically (temp file, then rename).")
@click.option("--force", is_flag=True, help="Write binary bytes to a terminal anyway.")
@output_option
@pass_app
def get(app: App, key: str, dest: str | None, to_file: str | None, force: bool, output: str | None) -> None:
    """Write the object's bytes to stdout (or a JSON document with --output json)."""
    from factflow_storage.cli import get_file

    if dest not in (None, "-"):
        raise click.UsageError("the only destination argument is '-' (stdout); use --to FILE for a file")
    if to_file and app.fmt(output) == JSON:
        raise click.UsageError("--to writes the object's bytes; it does not take --output json")
    refuse_prefix(key)
    if app.fmt(output) == JSON:
        emit_json(app.service.get_document(key))
        return
    with app.open_object(key) as stream:
        if to_file and to_file != "-":
            get_file.to_file(stream, to_file)
            return
        get_file.check_terminal(key, stream.info.content_type or stream.metadata.get("content_type"), force)
        stream.copy_to(sys.stdout.buffer)


@command.command()
@click.argument("key")
@output_option
@pass_app
def metadata(app: App, key: str, output: str | None) -> None:
    """The object's full metadata blob."""
    refuse_prefix(key)
    blob = app.service.metadata(key)
    if app.fmt(output) == JSON:
        emit_json(blob)
    else:
        emit_lines(field_lines(blob))


@command.command()
@click.argument("key")
@click.option("--file", "source", default="-", metavar="PATH|-", show_default=True,
              help="Read the bytes from PATH, or stdin with '-'.")
@click.option("--metadata", "metadata_json", metavar="JSON", help="Metadata blob, a JSON object.")
@click.option("--content-type", default=None, help="Content type (guessed from the key otherwise).")
@click.option("--if-match", "if_match", metavar="ETAG",
              help="Write only over the version with this ETag (a compare-and-swap).")
@click.option("--if-absent", is_flag=True, help="Write only if there is no object at KEY.")
@output_option
@pass_app
def put(app: App, key: str, source: str, metadata_json: str | None, content_type: str | None,
        if_match: str | None, if_absent: bool, output: str | None) -> None:
    """Store bytes under KEY, from a file or stdin."""
    from factflow_storage.protocol import WriteCondition

    if if_match is not None and if_absent:
        raise click.UsageError("--if-match and --if-absent exclude each other")
    condition = None
    if if_match is not None:
        tag = if_match.strip().strip('"').removeprefix("sha256:")  # the checksum put and metadata show
        if not tag or tag == "*":
            raise click.BadParameter("give the ETag of the version to replace", param_hint="--if-match")
        condition = WriteCondition(if_match=(tag,))
    elif if_absent:
        condition = WriteCondition(if_none_match=("*",))
    blob = None
    if metadata_json:
        try:
            blob = orjson.loads(metadata_json)
        except orjson.JSONDecodeError as err:
            raise BadRequest(f"--metadata is not valid JSON: {err}") from None
        if not isinstance(blob, dict):
            raise BadRequest("--metadata must be a JSON object")
    if source == "-":
        stored = app.service.put(key, sys.stdin.buffer, blob, content_type=content_type, condition=condition)
    else:
        try:
            handle = open(source, "rb")
        except OSError as err:
            raise BadRequest(f"cannot read {source}: {err.strerror}") from None
        with handle:
            stored = app.service.put(key, handle, blob, content_type=content_type, condition=condition)
    if app.fmt(output) == JSON:
        emit_json(stored)
    else:
        emit_lines([f"stored {stored['key']} ({stored['content_length']} bytes, {stored['checksum']})"])


@command.command()
@click.argument("key")
@output_option
@pass_app
def delete(app: App, key: str, output: str | None) -> None:
    """Delete one object (a missing one is reported on stderr, exit 0 as on S3)."""
    deleted = app.service.delete(key)
    if not deleted:
        click.echo(f"no object {key}: nothing deleted", err=True)
    if app.fmt(output) == JSON:
        emit_json({"key": key, "deleted": deleted})
    elif deleted:
        emit_lines([f"deleted {key}"])

"""``factflow config show``: the settings in force and where each came from."""

from __future__ import annotations

import os

import click

from factflow_storage.cli.options import App, output_option, pass_app
from factflow_storage.cli.render import JSON, emit_json, emit_lines, table_lines
from factflow_storage.errors import ConfigError, StorageError
from factflow_storage.registry import parse_storage_uri


def resolved_uri(uri: str) -> str:
    """A file:// URI as the path it opens: a relative one depends on where the command ran."""
    try:
        parsed = parse_storage_uri(uri)
    except ConfigError:
        return uri  # shown as given; the commands that open it say what is wrong
    if parsed.scheme != "file":
        return uri
    return f"file://{os.path.abspath(os.path.expanduser(parsed.location))}"


@click.group("config")
def command() -> None:
    """Inspect settings."""


@command.command()
@output_option
@pass_app
def show(app: App, output: str | None) -> None:
    """Every setting, its value (secrets masked) and its source (with --api, the server's storage)."""
    rows = app.settings.shown()
    if not app.remote:
        for row in rows:
            if row["name"] == "storage_uri":
                row["value"] = resolved_uri(row["value"])
    else:
        # The local storage setting is not used over --api: show what the server serves.
        source = f"api {app.settings.api_url}"
        try:
            served = app.service.health().get("storage")
        except StorageError as err:
            # A diagnostic command still shows the rest when the server is away.
            served, source = None, f"{source} (unreachable: {' '.join(str(err).split())})"
        for row in rows:
            if row["name"] == "storage_uri":
                row.update(value=served, source=source)
    if app.fmt(output) == JSON:
        emit_json({"config_file": str(app.settings.config_file) if app.settings.config_file else None,
                   "settings": rows})
    else:
        emit_lines(table_lines(rows, ("name", "value", "source")))

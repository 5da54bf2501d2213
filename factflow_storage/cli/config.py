"""``factflow config show``: the settings in force and where each came from."""

from __future__ import annotations

import click

from factflow_storage.cli.options import App, output_option, pass_app
from factflow_storage.cli.render import JSON, emit_json, emit_lines, table_lines


@click.group("config")
def command() -> None:
    """Inspect settings."""


@command.command()
@output_option
@pass_app
def show(app: App, output: str | None) -> None:
    """Every setting, its value (secrets masked) and its source (with --api, the server's storage)."""
    rows = app.settings.shown()
    if app.remote:
        # The local storage setting is not used over --api: show what the server serves.
        served = app.service.health().get("storage")
        for row in rows:
            if row["name"] == "storage_uri":
                row.update(value=served, source=f"api {app.settings.api_url}")
    if app.fmt(output) == JSON:
        emit_json({"config_file": str(app.settings.config_file) if app.settings.config_file else None,
                   "settings": rows})
    else:
        emit_lines(table_lines(rows, ("name", "value", "source")))

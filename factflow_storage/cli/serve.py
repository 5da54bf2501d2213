"""``factflow serve``: the embedded HTTP API."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="0 picks a free port.")
@click.option("--threads", type=click.IntRange(min=1), default=32, show_default=True)
@click.pass_context
def command(ctx: click.Context, host: str, port: int, threads: int) -> None:
    """Serve the storage API over HTTP."""
    raise click.ClickException("serve is not available yet")

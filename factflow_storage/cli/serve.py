"""``factflow serve``: the embedded HTTP API over the storage URI in force."""

from __future__ import annotations

import os

import click

from factflow_storage.cli.options import App, pass_app


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs FACTFLOW_API_TOKEN.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="0 picks a free port (printed).")
@click.option("--threads", type=click.IntRange(min=1), default=32, show_default=True,
              help="Worker threads; each open event stream holds one.")
@click.option("--max-streams", type=click.IntRange(min=1), default=None,
              help="Event streams open at once (default: half the threads); past it 503.")
@click.option("--storage", "storage_uri", metavar="URI", default=None,
              help="Storage to serve (else the global --storage / FACTFLOW_STORAGE_URI).")
@pass_app
def command(app: App, host: str, port: int, threads: int, max_streams: int | None,
            storage_uri: str | None) -> None:
    """Serve the storage API over HTTP (prints the URL it listens on)."""
    from factflow_storage.registry import open_provider
    from factflow_storage.server.app import serve
    from factflow_storage.server.auth import check_bind
    from factflow_storage.service import StorageService

    token = app.settings.api_token or None
    check_bind(host, token)
    settings = app.settings
    if storage_uri:
        from factflow_storage.settings import load_settings

        settings = load_settings({"storage_uri": storage_uri, "api_url": None},
                                 config=str(app.settings.config_file) if app.settings.config_file else None)
    from factflow_storage.archive.limits import ArchiveLimits
    from factflow_storage.server.app import default_max_streams
    from factflow_storage.server.origin import parse_origins

    options = {"cors_origins": parse_origins(app.settings.api_cors_origins),
               "archive_limits": ArchiveLimits.from_settings(app.settings),
               "max_streams": max_streams or default_max_streams(threads)}
    provider = open_provider(settings)
    root = getattr(provider, "root", None)
    if root is not None and not os.path.isdir(root):
        # Served listings of a mistyped path would be empty without a word: say so once.
        click.echo(f"note: storage root {root} does not exist yet; the first write creates it", err=True)
    serve(StorageService(provider), host, port, threads=threads, token=token,
          on_bound=lambda url: click.echo(f"serving on {url}"), archive_ttl=settings.archive_ttl_seconds(),
          **options)

"""The ``factflow`` command: global options, one application object, one error edge."""

from __future__ import annotations

import os
import sys

import click

from factflow_storage.cli.lazy import LazyCommands
from factflow_storage.cli.options import App, Duration
from factflow_storage.cli.render import FORMATS, TABLE
from factflow_storage.errors import StorageError


class FactflowGroup(LazyCommands, click.Group):
    """Turns the project's errors into one line on stderr and exit 1, at the edge only.

    A reader that goes away (``| head``) and Ctrl+C are handled here too, because click's
    own handlers would turn them into exit 1 ("Aborted!") before ``main`` sees them.
    """

    # Imported when run; the line is what the root's --help shows (tests keep it in sync).
    lazy = {
        "completion": ("factflow_storage.cli.completion:command", "Print the completion script for SHELL (commands, options,..."),
        "config": ("factflow_storage.cli.config:command", "Inspect settings."),
        "demo": ("factflow_storage.cli.demo:command", "Write a sample execution (two routes, four stages, JSON, text..."),
        "execution": ("factflow_storage.cli.execution:command", "Start, finish and inspect executions."),
        "serve": ("factflow_storage.cli.serve:command", "Serve the storage API over HTTP (prints the URL it listens on)."),
        "storage": ("factflow_storage.cli.storage:command", "Browse, read and write stored artefacts."),
    }

    def loaded(self, command: click.Command) -> None:
        # What used to be done to the whole tree at import, done to each command as it loads.
        from factflow_storage.cli import completion, examples

        completion.install(self)
        examples.install(self)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StorageError as err:
            raise click.ClickException(" ".join(str(err).split())) from None
        except BrokenPipeError:
            _silence_stdout()
            ctx.exit(0)
        except KeyboardInterrupt:
            ctx.exit(130)
        except OSError as err:
            # Storage errors arrive as StorageError; a bare OSError here is the output
            # failing (a full disk, /dev/full), which deserves one line, not a traceback.
            # One that names a file is about that file, so the line names it instead.
            if err.filename is not None:
                raise click.ClickException(f"{err.filename}: {err.strerror or err}") from None
            _silence_stdout()
            raise click.ClickException(f"cannot write the output: {err.strerror or err}") from None


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@click.group(cls=FactflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--output", "-o", type=click.Choice(FORMATS), default=TABLE, show_default=True,
              help="Output format for every command.")
@click.option("--api", "api_url", metavar="URL", help="Talk to a `factflow serve` at URL [env FACTFLOW_API_URL].")
@click.option("--storage", "storage_uri", metavar="URI",
              help="Storage URI, file://PATH or minio://BUCKET [env FACTFLOW_STORAGE_URI].")
@click.option("--config", "config_file", metavar="FILE", help="TOML config file [env FACTFLOW_CONFIG].")
@click.option("--timeout", type=Duration(), default=None, help="Time limit for waiting commands: 30s, 5m, 1h.")
@click.option("--verbose", "-v", count=True, help="Log what the tool does to stderr (-vv: everything).")
@click.option("--debug", is_flag=True, help="Log everything to stderr, HTTP traffic included.")
@click.version_option(package_name="factflow-storage", prog_name="factflow")
@click.pass_context
def cli(ctx: click.Context, output: str, api_url: str | None, storage_uri: str | None,
        config_file: str | None, timeout: float | None, verbose: int, debug: bool) -> None:
    """factflow: find, read, follow and hand off pipeline artefacts."""
    from factflow_storage.cli.logs import setup_logging
    from factflow_storage.settings import load_settings

    setup_logging(verbose, debug)
    try:
        settings = load_settings({"api_url": api_url, "storage_uri": storage_uri}, config=config_file)
    except StorageError as err:
        raise click.ClickException(str(err)) from None
    ctx.obj = App(settings, output, timeout)


def main() -> None:
    try:
        cli.main(prog_name="factflow")
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)

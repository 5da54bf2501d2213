"""``factflow --help`` and ``factflow -h`` without importing click: the console script's entry.

click costs four times the bare interpreter's start-up, so the root's help, which users
run most, is printed from text rendered by click ahead of time. ``tests/test_cli_lazy.py``
fails when it drifts from what click renders; rewrite it with
``python3 -m factflow_storage.cli.entry --regenerate``. ``storage get KEY`` without
options takes its own click-free path (``quick``); everything else goes to click.
"""

from __future__ import annotations

import os
import sys

# click wraps help to min(terminal columns, 80) - 2; this text is the 80-column rendering.
WIDTH = 80

ROOT_HELP = """\
Usage: factflow [OPTIONS] COMMAND [ARGS]...

  factflow: find, read, follow and hand off pipeline artefacts.

Options:
  -o, --output [table|json]  Output format for every command.  [default:
                             table]
  --api URL                  Talk to a `factflow serve` at URL [env
                             FACTFLOW_API_URL].
  --storage URI              Storage URI, file://PATH or minio://BUCKET [env
                             FACTFLOW_STORAGE_URI].
  --config FILE              TOML config file [env FACTFLOW_CONFIG].
  --timeout DURATION         Time limit for waiting commands: 30s, 5m, 1h.
  -v, --verbose              Log what the tool does to stderr (-vv:
                             everything).
  --debug                    Log everything to stderr, HTTP traffic included.
  --version                  Show the version and exit.
  -h, --help                 Show this message and exit.

Commands:
  completion  Print the completion script for SHELL (commands, options,...
  config      Inspect settings.
  demo        Write a sample execution (two routes, four stages, JSON, text...
  execution   Start, finish and inspect executions.
  serve       Serve the storage API over HTTP (prints the URL it listens on).
  storage     Browse, read and write stored artefacts.
"""


def _columns() -> int:
    # shutil.get_terminal_size's rule, without importing shutil.
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    if sys.__stdout__ is None:
        return WIDTH
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or WIDTH
    except (ValueError, OSError):
        return WIDTH


def _is_plain_get(argv: list[str]) -> bool:
    return len(argv) == 3 and argv[:2] == ["storage", "get"] and not argv[2].startswith("-")


def main() -> None:
    if sys.argv[1:] in (["--help"], ["-h"]) and _columns() >= WIDTH:
        try:
            sys.stdout.write(ROOT_HELP)
            sys.stdout.flush()
        except BrokenPipeError:
            # Python flushes stdout again at exit; point it at /dev/null so that cannot fail.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if _is_plain_get(sys.argv[1:]):
        from factflow_storage.cli.quick import run_get

        try:
            if run_get(sys.argv[3]):
                return
        except KeyboardInterrupt:
            sys.exit(130)  # as click's path exits on Ctrl+C
    from factflow_storage.cli.main import main as run

    run()


def render_root_help() -> str:
    """What click prints for ``factflow --help`` in a terminal of 80 columns or more."""
    from click.testing import CliRunner

    from factflow_storage.cli.main import cli

    return CliRunner().invoke(cli, ["--help"], prog_name="factflow", terminal_width=WIDTH - 2).stdout


def _regenerate() -> None:
    path = os.path.abspath(__file__)
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    opening = 'ROOT_HELP = """\\\n'
    start = source.index(opening) + len(opening)
    end = source.index('"""', start)
    text = render_root_help()
    if '"""' in text or "\\" in text:
        raise SystemExit("the help text needs escaping: write ROOT_HELP by hand")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(source[:start] + text + source[end:])


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    _regenerate()

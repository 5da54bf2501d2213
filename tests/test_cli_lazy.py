"""Start-up: ``factflow --help`` imports no subcommand and nothing a command needs to run,
and the one-line helps the root stores for its lazy commands match the commands' own."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import orjson
import pytest

from factflow_storage.cli.main import cli

_MODULES_PROBE = r"""
import runpy, sys
sys.argv = ["factflow", *sys.argv[1:]]
try:
    runpy.run_module("factflow_storage", run_name="__main__")
except SystemExit:
    pass
print("MODULES=" + ",".join(sorted(sys.modules)), file=sys.stderr)
"""

# What a command needs to run, but --help must not pay for.
NOT_ON_HELP_PATH = ("orjson", "tomllib", "hashlib", "dataclasses", "factflow_storage.service",
                    "factflow_storage.settings", "factflow_storage.registry", "factflow_storage.protocol",
                    "factflow_storage.cli.storage", "factflow_storage.cli.demo", "factflow_storage.cli.execution")


def _modules_after(*args: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    probe = subprocess.run([sys.executable, "-c", _MODULES_PROBE, *args], capture_output=True, text=True,
                           env=env, timeout=60)
    last = probe.stderr.splitlines()[-1]
    assert last.startswith("MODULES="), probe.stderr
    return set(last.removeprefix("MODULES=").split(","))


def test_root_help_imports_no_command_module():
    loaded = _modules_after("--help")
    assert sorted(loaded & set(NOT_ON_HELP_PATH)) == []


def test_storage_help_imports_only_its_group():
    loaded = _modules_after("storage", "--help")
    assert "factflow_storage.cli.storage" in loaded
    assert sorted(loaded & {"factflow_storage.cli.demo", "factflow_storage.cli.serve",
                            "factflow_storage.service"}) == []


_HELP_TWICE = r"""
import sys
import click, orjson
from click.testing import CliRunner
from factflow_storage.cli.main import cli
path = sys.argv[1:]
group = cli
for name in path:
    group = group.get_command(click.Context(group), name)
lazy = CliRunner().invoke(cli, [*path, "--help"], prog_name="factflow").stdout
assert not set(group.lazy) & set(group.commands), "a command was imported before its group's --help"
ctx = click.Context(group)
for name in group.list_commands(ctx):
    group.get_command(ctx, name)  # every command imported: click renders their own lines
loaded = CliRunner().invoke(cli, [*path, "--help"], prog_name="factflow").stdout
print(orjson.dumps([lazy, loaded]).decode())
"""


@pytest.mark.parametrize("path", [[], ["storage"]])
def test_stored_short_helps_match_the_commands(path):
    # A fresh interpreter: this process may have imported the commands already.
    run = subprocess.run([sys.executable, "-c", _HELP_TWICE, *path], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lazy, loaded = orjson.loads(run.stdout)
    assert "Commands:" in lazy
    assert lazy == loaded


def _storage() -> click.Group:
    return cli.get_command(click.Context(cli), "storage")


@pytest.mark.parametrize("group, name", [*((cli, name) for name in sorted(cli.lazy)),
                                         *((_storage(), name) for name in sorted(_storage().lazy))])
def test_lazy_targets_are_click_commands(group, name):
    command = group.get_command(click.Context(group), name)
    assert isinstance(command, click.Command)
    assert command.name == name


def test_a_storage_command_imports_none_of_its_siblings():
    loaded = _modules_after("storage", "get", "--help")
    siblings = {"factflow_storage.cli.watch", "factflow_storage.cli.download", "factflow_storage.cli.fsck",
                "factflow_storage.cli.retention", "factflow_storage.cli.tools", "factflow_storage.cli.copy"}
    assert sorted(loaded & siblings) == []
    assert "factflow_storage.cli.watch" in _modules_after("storage", "watch", "--help")


# -- the root's help without click --------------------------------------------------------

_CLICK_ONLY = "from factflow_storage.cli.main import main; main()"
_ENTRY = """
import sys
from factflow_storage.cli.entry import main
try:
    main()
finally:
    print(sorted(m for m in sys.modules if m.startswith("click")), file=sys.stderr)
"""


def _run(code: str, *args: str, columns: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_") and k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.mark.parametrize("option", ["--help", "-h"])
@pytest.mark.parametrize("columns", [None, "80", "200"])
def test_root_help_is_clicks_own_without_importing_click(option, columns):
    by_click = _run(_CLICK_ONLY, option, columns=columns)
    fast = _run(_ENTRY, option, columns=columns)
    assert by_click.returncode == fast.returncode == 0, (by_click.stderr, fast.stderr)
    assert fast.stdout == by_click.stdout, "run: python3 -m factflow_storage.cli.entry --regenerate"
    assert fast.stderr.strip() == "[]"


@pytest.mark.parametrize("args", [["--help", "-o", "json"], ["storage", "--help"], ["--version"]])
def test_other_arguments_go_to_click(args):
    fast = _run(_ENTRY, *args, columns=None)
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout == _run(_CLICK_ONLY, *args, columns=None).stdout
    assert "click" in fast.stderr.splitlines()[-1]


def test_a_narrow_terminal_gets_clicks_wrapping():
    fast = _run(_ENTRY, "--help", columns="60")
    assert fast.stdout == _run(_CLICK_ONLY, "--help", columns="60").stdout
    assert max(len(line) for line in fast.stdout.splitlines()) <= 58
    assert "click" in fast.stderr.splitlines()[-1]


def test_root_help_into_a_closed_pipe_exits_0():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    run = subprocess.run(f"{sys.executable} -m factflow_storage --help | head -c 1", shell=True,
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.stdout == "U"
    assert "Traceback" not in run.stderr

"""Subcommands imported only when they run, so ``factflow --help`` stays cheap.

click's documented LazyGroup pattern, plus one step: the root's ``--help`` lists every
command with its one-line help, which would import them all, so each entry carries that
line too (``tests/test_cli_lazy.py`` checks it against the command's own docstring).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click


class LazyCommands:
    """Mixin for a ``click.Group``: ``lazy`` maps a name to ``("module:attr", short help)``."""

    lazy: Mapping[str, tuple[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})  # type: ignore[misc]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:  # type: ignore[attr-defined]
            command = load(self.lazy[name][0])
            self.add_command(command, name)  # type: ignore[attr-defined]
            self.loaded(command)
        return super().get_command(ctx, name)  # type: ignore[misc]

    def loaded(self, command: click.Command) -> None:
        """Called once per command as it is imported (to install completers, epilogs...)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own layout, with the stored line standing in for a command not yet imported.
        names = [name for name in self.list_commands(ctx)
                 if name in self.lazy and name not in self.commands  # type: ignore[attr-defined]
                 or not getattr(self.get_command(ctx, name), "hidden", True)]
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy and name not in self.commands:  # type: ignore[attr-defined]
                rows.append((name, self.lazy[name][1]))
            else:
                rows.append((name, self.commands[name].get_short_help_str(limit)))  # type: ignore[attr-defined]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def load(target: str) -> click.Command:
    module_name, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module_name), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command

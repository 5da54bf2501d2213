"""``factflow completion bash|zsh|fish``: print a shell completion script.

click completes commands and options itself; this adds execution ids and key prefixes,
each from one bounded listing call per TAB, from the storage (or API) the command line
and settings name.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_FACTFLOW_COMPLETE"
# One page of one listing per TAB: enough to choose from, cheap on any store.
MAX_CANDIDATES = 200
KEY_PARAMS = ("key", "prefix")
EXECUTION_PARAMS = ("execution_id", "execution_ids", "execution_a", "execution_b")


@click.command("completion", epilog="""\b
Examples:
  source <(factflow completion bash)          # in ~/.bashrc
  factflow completion fish > ~/.config/fish/completions/factflow.fish""")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def command(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (commands, options, execution ids, keys)."""
    from factflow_storage.cli import invocation

    runner = invocation.self_argv()
    if runner is not None and shell == "bash":
        click.echo(zipapp_bash_script(runner))
        return
    if runner is not None:
        click.echo(f"{shell} completion binds to a 'factflow' on PATH; make one that runs this archive: "
                   f"{WRAPPER_HINT.format(command=shlex.join(runner))}", err=True)
    root = ctx.find_root()
    completion_class = get_completion_class(shell)
    assert completion_class is not None  # SHELLS are the shells click registers
    script = completion_class(root.command, {}, "factflow", COMPLETE_VAR).source()
    click.echo(script)


WRAPPER_HINT = ("""mkdir -p ~/.local/bin && printf '#!/bin/sh\\nexec {command} "$@"\\n' > ~/.local/bin/factflow """
                """&& chmod +x ~/.local/bin/factflow""")

# Run as ``python3 factflow.pyz``, there may be no ``factflow`` on PATH: the script runs the
# archive by absolute paths, completes it typed as a path (bash looks a path's last part
# up), and completes ``python3 ... factflow.pyz ...`` by wrapping the interpreter's own
# completion, which still answers for every other python3 command line.
_ZIPAPP_BASH = r"""
_factflow_pyz_run() {
    local IFS=$'\n'
    local response
    local words=("${COMP_WORDS[@]:$1}")
    response=$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((COMP_CWORD - $1)) %(var)s=bash_complete %(runner)s)
    for completion in $response; do
        IFS=',' read type value <<< "$completion"
        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=($value)
        fi
    done
    return 0
}

_factflow_pyz_completion() {
    _factflow_pyz_run 0
}

_factflow_pyz_python() {
    if [[ $COMP_CWORD -ge 2 && ${COMP_WORDS[1]} == *%(name)s ]]; then
        _factflow_pyz_run 1
        return 0
    fi
    local python=${1##*/}
    local previous=_factflow_pyz_previous_${python//[^a-zA-Z0-9_]/_}
    if [[ -n ${!previous} ]]; then
        "${!previous}" "$@"
    else
        COMPREPLY=()
        compopt -o default
    fi
}

_factflow_pyz_setup() {
    local python spec
    complete -o nosort -F _factflow_pyz_completion %(name)s
    for python in %(pythons)s; do
        spec=$(complete -p "$python" 2>/dev/null)
        if [[ $spec =~ -F\ ([^ ]+) && ${BASH_REMATCH[1]} != _factflow_pyz_python ]]; then
            printf -v "_factflow_pyz_previous_${python//[^a-zA-Z0-9_]/_}" '%%s' "${BASH_REMATCH[1]}"
        fi
        complete -o nosort -F _factflow_pyz_python "$python"
    done
}

_factflow_pyz_setup
"""


def zipapp_bash_script(runner: list[str]) -> str:
    """bash completion for a pyz run by ``runner`` (absolute interpreter and archive)."""
    archive = os.path.basename(runner[-1])
    pythons = dict.fromkeys(["python3", os.path.basename(runner[0])])
    return _ZIPAPP_BASH.strip("\n") % {
        "var": COMPLETE_VAR, "runner": shlex.join(runner), "name": shlex.quote(archive),
        "pythons": " ".join(shlex.quote(name) for name in pythons)}


def _service(ctx: click.Context) -> Any:
    from factflow_storage.cli.options import App
    from factflow_storage.settings import load_settings

    params = ctx.find_root().params
    settings = load_settings({"api_url": params.get("api_url"), "storage_uri": params.get("storage_uri")},
                             config=params.get("config_file"))
    return App(settings, "table", params.get("timeout")).service


def _listing(ctx: click.Context, prefix: str) -> dict[str, Any]:
    return _service(ctx).list_page(prefix, delimiter="/", include_metadata=False, limit=MAX_CANDIDATES)


def complete_key(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        page = _listing(ctx, incomplete)
    except Exception:  # noqa: BLE001 - a failed TAB offers nothing rather than a traceback
        return []
    return ([CompletionItem(prefix) for prefix in page["common_prefixes"]]
            + [CompletionItem(row["key"]) for row in page["objects"]])


def complete_execution(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from factflow_storage.keys import EXECUTIONS_PREFIX

    try:
        page = _listing(ctx, EXECUTIONS_PREFIX + incomplete)
    except Exception:  # noqa: BLE001 - a failed TAB offers nothing rather than a traceback
        return []
    return [CompletionItem(prefix[len(EXECUTIONS_PREFIX):].rstrip("/")) for prefix in page["common_prefixes"]]


def install(group: click.Group) -> None:
    """Give every KEY/PREFIX and execution-id parameter of the tree its completer.

    Done by walking the tree rather than in each decorator, so commands added later in
    any module complete the same way without knowing about this one.
    """
    for sub in group.commands.values():
        if isinstance(sub, click.Group):
            install(sub)
            continue
        for param in sub.params:
            completer: Callable | None = None
            if param.name in KEY_PARAMS:
                completer = complete_key
            elif param.name in EXECUTION_PARAMS:
                completer = complete_execution
            if completer is not None and getattr(param, "_custom_shell_complete", None) is None:
                param._custom_shell_complete = completer

"""The package's layering, read from every way a module names another: import statements
(those inside functions and under ``if TYPE_CHECKING:`` too: a type a module needs is a
dependency, and a circle through one is still a circle), ``importlib.import_module`` and
module names held as strings (``"factflow_storage.x.y"`` or ``"factflow_storage.x.y:Name"``,
as plug-in registries hold them), which load a module as surely as an import does.

    core      errors, keys, metadata, protocol, settings, storage_uri, api_paths, parallel,
              faults (the crash-test hook), fsck (its report), kernel_copy
    zipformat zipformat.*                       -> core (the zip both sides of a download share)
    providers providers.*                       -> core (storage primitives only)
    domain    store, executions, execution_index(_check), lineage_index, stage_graph
                                                -> core (what stored objects mean, built on
                                                   any provider's primitives)
    registry  registry (URI scheme -> provider) -> core, providers, domain
    facade    the package's ``__init__``        -> what it re-exports, lazily
    service   service, interface, pipeline, operations.* -> core, providers? no: core and watch
    archive   archive.* (server-side jobs)      -> core, service, zipformat; not the client side
    download  download.* (client-side)          -> core, service interface, zipformat; not the server
    watch     watch.*                           -> core, service
    client    client, api_response              -> core, service, watch
    server    server.*                          -> anything but the CLI
    cli       cli.*, __main__                   -> anything

and no import cycle anywhere. ``KNOWN_EXCEPTIONS`` lists the edges today's code still
has against these rules, each being removed by work in progress; the list is to be
emptied, never grown.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "factflow_storage"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# (importer, imported): edges that break a rule today and are being removed.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()

CORE = {"errors", "keys", "metadata", "protocol", "settings", "storage_uri", "parallel", "api_paths", "faults",
        "fsck", "kernel_copy"}
DOMAIN = {"store", "executions", "execution_index", "execution_index_check", "lineage_index", "stage_graph"}
FORBIDDEN = {
    # layer: layers it must not import
    "core": {"providers", "domain", "registry", "service", "watch", "client", "server", "cli", "archive",
             "download", "zipformat", "retention", "tools", "facade"},
    "zipformat": {"providers", "domain", "registry", "service", "watch", "client", "server", "cli", "archive", "download",
                  "retention", "tools"},
    "providers": {"domain", "registry", "service", "watch", "client", "server", "cli", "archive", "download",
                  "retention", "tools", "settings"},
    "domain": {"providers", "registry", "service", "watch", "client", "server", "cli", "archive", "download",
               "zipformat", "retention", "tools", "copying", "settings"},
    "registry": {"service", "watch", "client", "server", "cli", "archive", "download", "retention", "tools",
                 "copying"},
    # The package's names for pipelines: what ``open_storage`` needs, never a front end.
    "facade": {"watch", "client", "server", "cli", "archive", "download", "retention", "tools", "copying"},
    "service": {"client", "server", "cli"},
    "retention": {"server", "cli", "client"},
    "tools": {"server", "cli", "client"},
    "copying": {"server", "cli", "client", "watch", "archive", "download"},
    "archive": {"server", "cli", "client", "download"},
    "download": {"server", "cli", "archive", "providers"},
    "watch": {"server", "cli"},
    "client": {"server", "cli"},
    "server": {"cli", "client"},
    "cli": set(),
}
THIRD_PARTY_HTTP_SERVER = ("bottle", "waitress")


def layer(module: str) -> str:
    """The layer of a package module; a module no rule names has none (and fails the test
    below), so a new module cannot slip past the rules unplaced."""
    parts = module.split(".")[1:] or ["__init__"]
    head = parts[0]
    if head == "__init__":
        return "facade"
    if head in CORE:
        return "core"
    if head in DOMAIN:
        return "domain"
    if head in ("service", "interface", "pipeline", "operations"):
        return "service"
    if head in ("client", "api_response"):
        return "client"
    if head == "__main__":
        return "cli"
    return head if head in FORBIDDEN else "none"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found[".".join(parts)] = path
    return found


# A module named in a string: "factflow_storage.a.b", or "factflow_storage.a.b:Name".
_NAMED_MODULE = re.compile(rf"^({PACKAGE}(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?::[A-Za-z_][A-Za-z0-9_.]*)?$")


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``module`` names: imported (at run time or for type checking), loaded
    by ``importlib.import_module``, or named in a string (package modules and third-party
    tops)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = _NAMED_MODULE.match(node.value)
            if named:
                found.add(_deepest_known(named.group(1), known))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):  # names from the package itself
                found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _deepest_known(name: str, known: set[str]) -> str:
    """``a.b.Name`` names module ``a.b``: the longest leading part that is a module."""
    parts = name.split(".")
    for end in range(len(parts), 1, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return name


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def internal(edges: set[str]) -> set[str]:
    return {edge for edge in edges if edge == PACKAGE or edge.startswith(PACKAGE + ".")}


def test_every_module_is_read_and_has_a_layer():
    # Counted apart from modules(): a walker that missed a folder would pass vacuously.
    on_disk = sum(1 for path in ROOT.rglob("*") if path.suffix == ".py")
    found = graph()
    assert len(found) == on_disk > 100
    assert sum(len(internal(edges)) for edges in found.values()) > 300
    unplaced = sorted(module for module in found if layer(module) == "none")
    assert not unplaced, f"modules in no layer (add them to the rules above): {unplaced}"


def test_the_rules_catch_an_upward_import(tmp_path):
    planted = tmp_path / "keys.py"
    planted.write_text("def f():\n    from factflow_storage.cli.main import cli\n")
    edges = imports_of("factflow_storage.keys", planted, set(modules()))
    assert "factflow_storage.cli.main" in edges
    assert layer("factflow_storage.cli.main") in FORBIDDEN[layer("factflow_storage.keys")]


@pytest.mark.parametrize("planted", [
    # A plug-in registry's entry, loaded later by importlib.
    'HOOKS = {"s3": "factflow_storage.watch.s3_sources:journal_hook"}\n',
    'import importlib\n\ndef f():\n    return importlib.import_module("factflow_storage.server.app")\n',
    'from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from factflow_storage.cli.options import App\n',
])
def test_the_rules_catch_an_import_by_string_or_for_types(tmp_path, planted):
    path = tmp_path / "registry.py"
    path.write_text(planted)
    module = "factflow_storage.keys"
    upward = [target for target in internal(imports_of(module, path, set(modules())))
              if layer(target) in FORBIDDEN[layer(module)]]
    assert len(upward) == 1, upward


def test_each_layer_imports_only_what_is_below_it():
    broken = []
    for module, edges in graph().items():
        for target in internal(edges):
            if (module, target) in KNOWN_EXCEPTIONS:
                continue
            forbidden = FORBIDDEN.get(layer(module), set())
            head = target.split(".")[1] if "." in target else "__init__"
            if layer(target) in forbidden or head in forbidden:
                broken.append(f"{module} ({layer(module)}) imports {target} ({layer(target)})")
    assert not broken, "\n".join(broken)


def test_no_import_cycle():
    edges = {module: {t for t in internal(targets) if (module, t) not in KNOWN_EXCEPTIONS}
             for module, targets in graph().items()}
    cycles = _cycles(edges)
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_known_exceptions_still_exist():
    # An exception whose edge is gone must leave the list, so the list only shrinks.
    edges = graph()
    stale = [edge for edge in KNOWN_EXCEPTIONS if edge[1] not in edges.get(edge[0], set())]
    assert not stale, f"remove from KNOWN_EXCEPTIONS: {stale}"


def test_the_api_client_imports_no_http_server():
    edges = graph()
    seen, pending = set(), ["factflow_storage.client", "factflow_storage.cli.main"]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        if module in edges and layer(module) != "server":
            pending.extend(t for t in edges[module] if t in edges or t.split(".")[0] in THIRD_PARTY_HTTP_SERVER)
    reached = sorted(m for m in seen if m.split(".")[0] in THIRD_PARTY_HTTP_SERVER)
    assert not reached, reached


@pytest.mark.parametrize("code", [
    "from factflow_storage.client import RemoteService; RemoteService('http://127.0.0.1:1')",
    "from factflow_storage.cli.main import cli",
])
def test_the_api_client_loads_no_http_server_at_run_time(code):
    probe = f"{code}; import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('bottle', 'waitress')))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_nothing_reaches_through_a_service_to_its_provider():
    # A service is the API: what runs beside it takes the store it reads as an argument,
    # so the same code cannot quietly depend on the local transport.
    reaching = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "provider":
                owner = node.value
                name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
                if "service" in name.lower():
                    reaching.append(f"{module}:{node.lineno}")
    assert not reaching, reaching


def test_only_the_cli_prints():
    # Library code logs; what reaches a terminal is the CLI's to say (``factflow serve``
    # prints its URL from the callback the server hands it).
    printing = []
    for module, path in modules().items():
        if layer(module) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{module}:{node.lineno}")
    assert not printing, printing


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found

"""The package's layering, read from its import statements (those inside functions too;
only ``if TYPE_CHECKING:`` blocks are left out, as they never run).

    core      errors, keys, metadata, protocol, settings, registry, executions, api_paths,
              lineage_index, faults (the crash-test hook), fsck (its report), kernel_copy
    zipformat zipformat.*                       -> core (the zip both sides of a download share)
    providers providers.*                       -> core
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
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "factflow_storage"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# (importer, imported): edges that break a rule today and are being removed.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()

CORE = {"errors", "keys", "metadata", "protocol", "settings", "registry", "executions", "execution_index", "lineage_index",
        "execution_index_check", "stage_graph", "parallel", "api_paths", "faults", "fsck", "kernel_copy", "__init__"}
FORBIDDEN = {
    # layer: layers it must not import
    "core": {"providers", "service", "watch", "client", "server", "cli", "archive", "download", "zipformat",
             "retention", "tools"},
    "zipformat": {"providers", "service", "watch", "client", "server", "cli", "archive", "download",
                  "retention", "tools"},
    "providers": {"service", "watch", "client", "server", "cli", "archive", "download", "retention", "tools",
                  "settings"},
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
    if head in CORE:
        return "core"
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


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``module`` imports when it runs (package modules and third-party tops)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


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

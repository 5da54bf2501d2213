"""``execution graph``: an execution's stages and which feeds which.

Nodes come from one streamed listing of the execution (objects, bytes and the newest
write per route/stage); edges from the stage pairs recorded at write time
(``factflow_storage.stage_graph``), one listing of records. A stage is ``receiving``
while the execution runs and its newest object is at most ``RECEIVING_SECONDS`` old.
"""

from __future__ import annotations

from datetime import datetime, timezone
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from factflow_storage import stage_graph
from factflow_storage.errors import NotFound
from factflow_storage.keys import execution_prefix
from factflow_storage.metadata import format_time

if TYPE_CHECKING:
    from factflow_storage.protocol import StorageProtocol

RECEIVING_SECONDS = 30.0


def execution_graph(service: Any, store: StorageProtocol, execution_id: str) -> dict[str, Any]:
    """``{"execution_id", "status", "nodes": [{"id", "route_id", "stage", "objects", "bytes",
    "last_modified", "receiving"}], "edges": [{"from", "to"[, "from_execution"]}]}``; edges
    from ``store``'s stage records."""
    prefix = execution_prefix(execution_id)
    try:
        record = service.execution(execution_id)
    except NotFound:
        record = None
    stages: dict[str, list[Any]] = {}
    for info in service.iter_objects(prefix):
        parts = info.key[len(prefix):].split("/", 2)
        if len(parts) < 3:
            continue  # an object beside the routes, not in a stage
        counts = stages.setdefault(f"{parts[0]}/{parts[1]}", [0, 0, info.last_modified])
        counts[0] += 1
        counts[1] += info.size
        counts[2] = max(counts[2], info.last_modified)
    if record is None and not stages:
        raise NotFound(f"no execution {execution_id!r}")
    status = record.get("status") if record else None
    edges = stage_graph.edges(store, execution_id)
    now = datetime.now(timezone.utc)
    nodes = []
    for name, (objects, size, newest) in sorted(stages.items()):
        route_id, stage = name.split("/")
        nodes.append({"id": name, "route_id": route_id, "stage": stage, "objects": objects, "bytes": size,
                      "last_modified": format_time(newest),
                      "receiving": status == "running" and (now - newest).total_seconds() <= RECEIVING_SECONDS})
    known = set(stages)
    for edge in edges:
        for end in ("from", "to"):
            name = edge[end]
            outside = end == "from" and "from_execution" in edge
            node_id = f"{edge['from_execution']}:{name}" if outside else name
            if node_id in known:
                continue
            known.add(node_id)
            route_id, stage = name.split("/")
            node = {"id": node_id, "route_id": route_id, "stage": stage, "objects": 0, "bytes": 0,
                    "last_modified": None, "receiving": False}
            if outside:
                node["execution_id"] = edge["from_execution"]
            nodes.append(node)
        if "from_execution" in edge:
            edge["from"] = f"{edge['from_execution']}:{edge['from']}"
    return {"execution_id": execution_id, "status": status, "nodes": nodes, "edges": edges}


def graph_lines(graph: Mapping[str, Any], human) -> list[str]:
    """The text form: one line per stage, then one per edge."""
    lines = [f"execution {graph['execution_id']} ({graph['status'] or 'no record'}): "
             f"{len(graph['nodes'])} stages, {len(graph['edges'])} edges"]
    width = max((len(node["id"]) for node in graph["nodes"]), default=0)
    for node in graph["nodes"]:
        mark = "  receiving" if node["receiving"] else ""
        lines.append(f"  {node['id']:<{width}}  {node['objects']:>7} objects  {human(node['bytes']):>10}{mark}")
    for edge in graph["edges"]:
        lines.append(f"  {edge['from']} -> {edge['to']}")
    return lines


def graph_dot(graph: Mapping[str, Any]) -> str:
    """Graphviz DOT: a node per stage labelled with its counts, an edge per stage pair."""
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = [f"digraph {quoted(graph['execution_id'])} {{", "  rankdir=LR;", "  node [shape=box];"]
    for node in graph["nodes"]:
        label = f"{node['id']}\n{node['objects']} objects, {node['bytes']} bytes"
        style = ", style=bold" if node["receiving"] else ""
        lines.append(f"  {quoted(node['id'])} [label={quoted(label)}{style}];")
    for edge in graph["edges"]:
        lines.append(f"  {quoted(edge['from'])} -> {quoted(edge['to'])};")
    lines.append("}")
    return "\n".join(lines) + "\n"

"""The pipeline of an execution as a graph: which stage feeds which, recorded at write time.

When a writer stores an object of execution E, stage ``route/stage``, whose ``lineage``
names keys of stages ``proute/pstage`` (of E, or of another execution P), the provider
records each distinct pair once, before the object is committed (in
``lineage_index.guard_write``, beside the lineage index's entries):

    _factflow/graph/<E>/<route>/<stage>/<P>/<proute>/<pstage>     (empty marker)

So the edges of an execution are one listing of ``graph/<E>/``, whatever its size: exact,
not sampled. A writer killed between the marker and its object leaves an edge whose
child may not exist; the graph's nodes come from a listing of the objects, so such an
edge shows up only as an edge to an empty stage. The markers go with the execution's
deletion, and so do the process's memory of them (``forget``), so an execution deleted
and written again through the same server gets its edges again. A deletion made by
another process is not seen by that memory: the edges it removed come back when a new
process writes the pair.
"""

from __future__ import annotations

from typing import Any

from factflow_storage.keys import parse_key

GRAPH = "graph/"


def stage_of(key: str) -> tuple[str, str, str] | None:
    """(execution, route, stage) of a conventional object key, else None."""
    parts = parse_key(key)
    if parts is None or parts.route_id is None or parts.stage is None or parts.msg_id is None:
        return None
    return parts.execution_id, parts.route_id, parts.stage


def edge_name(child: tuple[str, str, str], parent: tuple[str, str, str]) -> str:
    return f"{GRAPH}{'/'.join(child)}/{'/'.join(parent)}"


def note_edges(provider, key: str, parents: list[str]) -> None:
    """Record the stage pairs ``key``'s parents make (called before the object is written)."""
    child = stage_of(key)
    if child is None:
        return
    # Each pair is written once per provider; a restarted writer writes it again (harmless).
    marked: set = provider.__dict__.setdefault("_graph_edges_marked", set())
    for parent_key in parents:
        parent = stage_of(parent_key)
        if parent is None:
            continue
        name = edge_name(child, parent)
        if name not in marked:
            provider.put_record(name, b"")
            marked.add(name)


def forget(provider, execution_id: str) -> None:
    """After ``execution_id``'s markers are deleted: this provider writes them again."""
    marked: set = provider.__dict__.get("_graph_edges_marked", set())
    prefix = f"{GRAPH}{execution_id}/"
    for name in [name for name in marked if name.startswith(prefix)]:
        marked.discard(name)


def edges(provider, execution_id: str) -> list[dict[str, Any]]:
    """``[{"from", "to"[, "from_execution"]}]``: stage names are ``route/stage``; an edge from
    another execution's stage says which in ``from_execution``."""
    prefix = f"{GRAPH}{execution_id}/"
    found = []
    for name in sorted(provider.list_records(prefix)):
        parts = name[len(prefix):].split("/")
        if len(parts) != 5:
            continue
        route, stage, parent_execution, parent_route, parent_stage = parts
        edge: dict[str, Any] = {"from": f"{parent_route}/{parent_stage}", "to": f"{route}/{stage}"}
        if parent_execution != execution_id:
            edge["from_execution"] = parent_execution
        found.append(edge)
    return found


def edge_records(provider, execution_id: str) -> list[str]:
    """The markers of ``execution_id``'s edges, to go with its deletion."""
    return list(provider.list_records(f"{GRAPH}{execution_id}/"))

"""``storage lineage``: where an object came from (the ``lineage`` field of its
metadata, followed upwards) and, on request, which objects name it as a parent.

Children are found among the objects of the same execution (one listing and one
metadata read each, so the cost is bounded by that execution's size), plus those of other
executions the cross-execution reference index records (``indexed_children``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from factflow_storage.errors import BadRequest, InvalidKey, NotFound
from factflow_storage.keys import execution_prefix, parse_key, validate_key

if TYPE_CHECKING:
    from factflow_storage.protocol import StorageProtocol

DEFAULT_DEPTH = 10
MAX_DEPTH = 100


def parent_refs(blob: dict[str, Any]) -> list[str]:
    """The ``lineage`` field as a list: parent keys, or a lineage row id as a string."""
    value = blob.get("lineage")
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value if item is not None and item != ""]
    return [str(value)]


def _node(service: Any, ref: str, depth: int, path: frozenset[str]) -> dict[str, Any]:
    node: dict[str, Any] = {"key": ref}
    try:
        validate_key(ref)
    except InvalidKey:
        node["reference"] = True  # a lineage row id, not an object key: nothing to follow
        return node
    if ref in path:
        node["cycle"] = True
        return node
    try:
        blob = service.metadata(ref)
    except NotFound:
        node["missing"] = True
        return node
    refs = parent_refs(blob)
    if depth <= 0:
        if refs:
            node["truncated"] = True
        return node
    node["parents"] = [_node(service, parent, depth - 1, path | {ref}) for parent in refs]
    return node


def indexed_children(store: StorageProtocol, key: str) -> list[str]:
    """Objects of other executions whose lineage names ``key``, per the cross-execution
    reference index in ``store`` (cost follows the references to ``key``'s execution, not
    the store)."""
    from factflow_storage.lineage_index import children_of

    return sorted(set(children_of(store, key)))


def same_execution_children(service: Any, key: str) -> Iterable[str]:
    parts = parse_key(key)
    if parts is None:
        return []
    prefix = execution_prefix(parts.execution_id)
    return [row["key"] for row in service.list_rows(prefix, with_metadata=True)
            if row["key"] != key and key in parent_refs(row["metadata"])]


def lineage(service: Any, store: StorageProtocol, key: str, *, depth: int = DEFAULT_DEPTH,
            children: bool = False) -> dict[str, Any]:
    """``{"key", "parents": [node...]}`` (each node a ``{"key", "parents"}`` tree; flags
    ``missing``, ``cycle``, ``reference``, ``truncated`` say why a branch stops), plus
    ``"children": [key...]`` when asked (from ``store``'s reference index too)."""
    validate_key(key)
    if not 0 <= depth <= MAX_DEPTH:
        raise BadRequest(f"depth must be between 0 and {MAX_DEPTH}")
    tree = _node(service, key, depth, frozenset())
    if tree.get("missing"):
        raise NotFound(f"no object {key!r}")
    tree.setdefault("parents", [])
    if children:
        found = set(same_execution_children(service, key))
        found.update(indexed_children(store, key) or ())
        tree["children"] = sorted(found)
    return tree


def tree_lines(tree: Mapping[str, Any]) -> list[str]:
    """The ancestors as an indented tree, the object first, in the style of ``tree``."""
    lines = [tree["key"]]

    def walk(nodes: list[dict[str, Any]], indent: str) -> None:
        for index, node in enumerate(nodes):
            last = index == len(nodes) - 1
            lines.append(f"{indent}{'└── ' if last else '├── '}{node['key']}{_flags(node)}")
            walk(node.get("parents", []), indent + ("    " if last else "│   "))

    walk(tree.get("parents", []), "")
    if "children" in tree:
        lines.append(f"children ({len(tree['children'])}):")
        lines.extend(f"  {child}" for child in tree["children"])
    return lines


def _flags(node: dict[str, Any]) -> str:
    shown = [name for name in ("missing", "cycle", "reference", "truncated") if node.get(name)]
    return f" ({', '.join(shown)})" if shown else ""

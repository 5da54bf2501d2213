"""The HTTP API's paths, named once: the server's routes, the ``--api`` client, the watch
client and the console all build their URLs from these, so a route moves in one place."""

from __future__ import annotations

API = "/api/v1"
HEALTH = API + "/health"
SESSION = API + "/session"
OPENAPI = API + "/openapi.json"
OBJECTS = API + "/storage/objects"
EVENTS = API + "/storage/events"
FSCK = API + "/storage/fsck"
DU = API + "/storage/du"
LINEAGE = API + "/storage/lineage"
DIFF = API + "/storage/diff"
EXECUTIONS = API + "/executions"
DELETIONS = API + "/deletions"
COPIES = API + "/copies"
ARCHIVE = API + "/content/archive"


# Paths under /executions/ that are not an execution: the ``<execution_id:path>`` routes
# match them too, and must answer 405 with what these take.
_SUB_RESOURCE_METHODS = {"prune": "POST", "deps": "GET", "graph": "GET"}


def allowed_on(path: str) -> str | None:
    """The methods a sub-resource path takes (``/executions/prune``, ``.../ID/deps``,
    ``/content/archive/prepare`` and ``/stream``)."""
    if path in (ARCHIVE + "/prepare", ARCHIVE + "/stream"):
        return "POST"
    if not path.startswith(EXECUTIONS + "/"):
        return None
    rest = path[len(EXECUTIONS) + 1:]
    if rest == "prune":
        return _SUB_RESOURCE_METHODS["prune"]
    for name in ("deps", "graph"):
        if rest.endswith("/" + name) and "/" not in rest[:-len(name) - 1]:
            return _SUB_RESOURCE_METHODS[name]
    return None

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
ARCHIVE = API + "/content/archive"

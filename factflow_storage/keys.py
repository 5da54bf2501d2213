"""Object keys: the one place that validates them and knows the key convention.

Convention: ``executions/<exec-id>/<route>/<stage>/<msg-id>``. Keys outside it are
allowed (users store other things too) as long as they are valid.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from factflow_storage.errors import InvalidKey

MAX_KEY_BYTES = 1024
# An execution id names files too (``_factflow/deletions/<id>.json``, a directory whose
# sidecars add their suffix): 200 bytes keeps each of them within a 255-byte file name.
MAX_EXECUTION_ID_BYTES = 200
SIDECAR_SUFFIX = ".meta.json"
RESERVED_PREFIX = "_factflow/"
EXECUTIONS_PREFIX = "executions/"
# Unicode category Cc: C0, DEL and C1 (a terminal may act on C1 as on C0).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _first_problem(key: str, *, allow_prefix: bool) -> str | None:
    if not key:
        return "is empty"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"is longer than {MAX_KEY_BYTES} bytes"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if _CONTROL.search(key):
        return "contains a NUL or control character"
    if "\\" in key:
        return "contains a backslash"
    if key.startswith("/"):
        return "is an absolute path"
    segments = key.split("/")
    if allow_prefix and segments[-1] == "":
        segments.pop()
    for segment in segments:
        if segment == "":
            return "has an empty segment (leading, trailing or doubled '/')"
        if segment in (".", ".."):
            return f"has a '{segment}' segment"
        if segment.endswith(SIDECAR_SUFFIX):
            return f"has a segment ending in '{SIDECAR_SUFFIX}' (reserved for sidecars)"
    if (key + "/").startswith(RESERVED_PREFIX):
        return f"is under the reserved prefix '{RESERVED_PREFIX}'"
    return None


def has_control_character(text: str) -> bool:
    """No key holds one, and S3's XML cannot carry most: a listing position with one is bad input."""
    return _CONTROL.search(text) is not None


def validate_key(key: str) -> str:
    """Return ``key`` if it may name an object, else raise InvalidKey."""
    problem = _first_problem(key, allow_prefix=False)
    if problem:
        raise InvalidKey(f"invalid key {key!r}: {problem}")
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, a key, or a key with one trailing '/'.

    A prefix may end mid-segment (``executions/ab`` matches ``executions/abc/...``),
    as in S3.
    """
    if prefix == "":
        return prefix
    problem = _first_problem(prefix, allow_prefix=True)
    if problem:
        raise InvalidKey(f"invalid prefix {prefix!r}: {problem}")
    return prefix


def validate_segment(value: str, what: str) -> str:
    """An execution id, route or stage: one valid key segment."""
    if not value or "/" in value or _first_problem(value, allow_prefix=False):
        raise InvalidKey(f"invalid {what} {value!r}: must be one key segment")
    return value


def validate_execution_id(value: str) -> str:
    """One key segment that can also name the record ``_factflow/executions/<id>.json``;
    writes check it too, so any execution that can be written can be deleted."""
    if value == RESERVED_PREFIX.rstrip("/"):
        raise InvalidKey(f"invalid execution id {value!r}: reserved for factflow's own records")
    validate_segment(value, "execution id")
    if len(value.encode()) > MAX_EXECUTION_ID_BYTES:
        raise InvalidKey(f"invalid execution id {value[:20]!r}...: longer than {MAX_EXECUTION_ID_BYTES} bytes")
    if (value + ".json").endswith(SIDECAR_SUFFIX):
        raise InvalidKey(f"invalid execution id {value!r}: its record name would end in '{SIDECAR_SUFFIX}'")
    return value


@dataclass(frozen=True, slots=True)
class KeyParts:
    execution_id: str
    route_id: str | None = None
    stage: str | None = None
    msg_id: str | None = None


def execution_prefix(execution_id: str) -> str:
    return f"{EXECUTIONS_PREFIX}{validate_segment(execution_id, 'execution id')}/"


def build_key(execution_id: str, route_id: str, stage: str, msg_id: str) -> str:
    """The conventional key of one message's artefact."""
    return validate_key(
        execution_prefix(execution_id)
        + "/".join(
            (
                validate_segment(route_id, "route"),
                validate_segment(stage, "stage"),
                msg_id,
            )
        )
    )


def parse_key(key: str) -> KeyParts | None:
    """Split a conventional key into its parts; None for keys outside the convention.

    The msg-id is everything after the stage, so it may itself contain '/'.
    """
    if not key.startswith(EXECUTIONS_PREFIX):
        return None
    parts: list[str | None] = [part or None for part in key[len(EXECUTIONS_PREFIX):].split("/", 3)]
    if parts[0] is None:
        return None
    # A prefix's trailing '/' leaves an empty last part: that level is not named yet.
    parts += [None] * (4 - len(parts))
    return KeyParts(parts[0], parts[1], parts[2], parts[3])


def narrow_prefix(prefix: str, route_id: str | None, stage: str | None) -> str:
    """Turn an execution prefix plus route/stage filters into the tightest key prefix."""
    parts = parse_key(prefix) if prefix.endswith("/") else None
    if parts and parts.route_id is None and route_id:
        prefix += validate_segment(route_id, "route") + "/"
        if stage:
            prefix += validate_segment(stage, "stage") + "/"
    elif parts and parts.stage is None and parts.route_id is not None and stage:
        prefix += validate_segment(stage, "stage") + "/"
    return prefix


def split_extensions(extension: str | Sequence[str] | None) -> tuple[str, ...]:
    if not extension:
        return ()
    items = extension.split(",") if isinstance(extension, str) else extension
    return tuple("." + item.strip().lstrip(".").lower() for item in items if item.strip())


def key_matches(key: str, routes: Collection[str] = (), stages: Collection[str] = (),
                extensions: tuple[str, ...] = ()) -> bool:
    """The route/stage/extension filter of listings, watch, archive jobs and downloads:
    ``key`` is of one of ``routes`` and one of ``stages`` (none given: any) and ends with
    one of ``extensions`` (as ``split_extensions`` gives them)."""
    if routes or stages:
        parts = parse_key(key)
        if parts is None or (routes and parts.route_id not in routes) or (stages and parts.stage not in stages):
            return False
    return not extensions or key.lower().endswith(extensions)

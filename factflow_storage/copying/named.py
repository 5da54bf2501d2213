"""Copies a server makes: only to destinations its operator named in the settings
(``copy_destinations``, NAME=URI), opened with the server's own credentials. A client
names a destination; a URI from a client is never opened, or any token holder could
write anywhere the server can reach."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from factflow_storage.errors import BadRequest, NotFound
from factflow_storage.store import Store

MAX_JOBS = 256
DEFAULT_JOBS = 32
NO_DESTINATIONS = ("this server has no copy destinations: its operator names them in FACTFLOW_COPY_DESTINATIONS "
                   "(NAME=URI,...) or [copy] destinations in its config file")
UNKNOWN_DESTINATION = "no copy destination named {name!r} on this server (it has: {names})"


def _flag(request: Mapping[str, Any], name: str) -> bool:
    value = request.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f'"{name}" must be true or false')
    return value


def parse_request(request: Any) -> dict[str, Any]:
    """The copy request's fields, checked: ``execution_ids`` or ``prefix``, ``destination``
    (a name), ``dry_run``, ``force``, ``with_parents``, ``jobs``."""
    if not isinstance(request, Mapping):
        raise BadRequest("the body must be a JSON object")
    ids, prefix = request.get("execution_ids"), request.get("prefix")
    if (ids is None) == (prefix is None):
        raise BadRequest('give either "execution_ids" (a list) or "prefix" (a string)')
    if ids is not None and (not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids)):
        raise BadRequest('"execution_ids" must be a non-empty list of strings')
    if prefix is not None and not isinstance(prefix, str):
        raise BadRequest('"prefix" must be a string')
    destination = request.get("destination")
    if not isinstance(destination, str) or not destination:
        raise BadRequest('"destination" must name one of the server\'s copy destinations')
    jobs = request.get("jobs", DEFAULT_JOBS)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise BadRequest(f'"jobs" must be an integer from 1 to {MAX_JOBS}')
    return {"execution_ids": ids, "prefix": prefix, "destination": destination, "jobs": jobs,
            **{name: _flag(request, name) for name in ("dry_run", "force", "with_parents")}}


def open_named(name: str) -> Store:
    """The destination the settings in force call ``name``."""
    from factflow_storage.registry import create_storage_provider
    from factflow_storage.settings import load_settings

    settings = load_settings()
    uris = settings.copy_destination_uris()
    if not uris:
        raise BadRequest(NO_DESTINATIONS)
    if name not in uris:
        raise NotFound(UNKNOWN_DESTINATION.format(name=name, names=", ".join(sorted(uris))))
    return create_storage_provider(uris[name], settings.provider_options(uris[name]), hooks=False)


def copy_named(source: Store, request: Any) -> dict[str, Any]:
    """Carry out a client's copy request; the summary, with the destination by name."""
    from factflow_storage.copying.plan import plan_prefix
    from factflow_storage.copying.run import SAME_STORE, plan_executions, run_plans, summary

    asked = parse_request(request)
    dest = open_named(asked["destination"])
    try:
        if asked["execution_ids"] is not None:
            plans, warnings = plan_executions(source, dest, asked["execution_ids"], jobs=asked["jobs"],
                                              force=asked["force"], with_parents=asked["with_parents"])
        else:
            if source.uri == dest.uri:
                raise BadRequest(SAME_STORE.format(dest=asked["destination"]))
            plans, warnings = [plan_prefix(source, dest, asked["prefix"], jobs=asked["jobs"])], []
        if not asked["dry_run"]:
            run_plans(source, dest, plans, jobs=asked["jobs"])
        result = summary(source, dest, plans, warnings, dry_run=asked["dry_run"])
    finally:
        dest.close()
    result["destination"] = asked["destination"]  # the server's URIs stay the server's
    return result

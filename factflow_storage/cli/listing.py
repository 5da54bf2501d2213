"""What ``list`` and ``browse`` share beyond the renderer: human sizes, the main
metadata fields in table mode, and refusing an execution id that names nothing."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import click

from factflow_storage.cli.progress import human_bytes as human_size
from factflow_storage.cli.render import object_line
from factflow_storage.errors import InvalidKey
from factflow_storage.keys import parse_key, validate_prefix
from factflow_storage.tools.execution_check import require_execution

__all__ = ["check_execution_prefix", "human_option", "listing_line", "metadata_line", "refuse_prefix",
           "write_fs_rows"]

PREFIX_GIVEN = "invalid key {key!r}: is a prefix (use browse or list)"
# The fields of a metadata blob worth a column; the whole blob is in --output json.
MAIN_FIELDS = ("content_type", "adapter", "checksum")


def human_option(command):
    return click.option("--human", "-H", "human", is_flag=True, help="Sizes in KiB, MiB, GiB.")(command)


def listing_line(row: Mapping[str, Any], human: bool) -> str:
    if human:
        row = {**row, "size": human_size(row["size"])}
    return object_line(row)


def metadata_line(row: Mapping[str, Any], human: bool) -> str:
    blob = row.get("metadata") or {}
    extra = "  ".join(f"{name}={blob[name]}" for name in MAIN_FIELDS if blob.get(name) not in (None, ""))
    return f"{listing_line(row, human)}  {extra}".rstrip()


def check_execution_prefix(service: Any, prefix: str) -> None:
    """``executions/<id>/`` that lists nothing is an error when no such execution exists."""
    parts = parse_key(prefix)
    if parts is not None and parts.route_id is None and prefix.endswith("/"):
        require_execution(service, parts.execution_id)


def refuse_prefix(key: str) -> None:
    """A key with a trailing '/' meant a prefix: say so, rather than which rule it breaks."""
    if key.endswith("/") and key.strip("/"):
        try:
            validate_prefix(key)
        except InvalidKey:
            return  # its own reason is the better message
        raise InvalidKey(PREFIX_GIVEN.format(key=key))


def write_fs_rows(app: Any, prefix: str, limit: int | None) -> bool:
    """``list --output json`` of a filesystem store in process, without filters, written
    by the store's own walker (``fs_json_rows``: the same bytes, a fraction of the work per
    object); False, having written nothing, for any other store."""
    if app.remote:
        return False
    from factflow_storage.cli.root_check import ExistingRoot, check_root
    from factflow_storage.providers.filesystem import FilesystemProvider

    guarded = app.provider
    provider = getattr(guarded, "primitives", None)
    if type(provider) is not FilesystemProvider:
        return False
    from factflow_storage.providers.fs_json_rows import ndjson_rows

    validate_prefix(prefix)  # its error comes first, as in the service
    if isinstance(guarded, ExistingRoot):
        check_root(provider.root)
    out = sys.stdout.buffer
    for chunk in ndjson_rows(provider, prefix, limit):
        out.write(chunk)
    out.flush()
    return True

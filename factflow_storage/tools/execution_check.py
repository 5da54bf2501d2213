"""Whether an execution id names anything: the check behind the CLI's "no execution"
errors and ``diff``. Kept apart from the tools it serves so a plain listing can use it
without their imports."""

from __future__ import annotations

from typing import Any

from factflow_storage.errors import NotFound
from factflow_storage.keys import execution_prefix


def require_execution(service: Any, execution_id: str) -> None:
    """An id with neither a record nor objects is a mistake, not an empty execution."""
    try:
        service.execution(execution_id)
        return
    except NotFound:
        pass
    for _ in service.list_rows(execution_prefix(execution_id), limit=1):
        return
    raise NotFound(f"no execution {execution_id!r} (no record and no objects)")

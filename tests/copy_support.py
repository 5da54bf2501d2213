"""Helpers for the copy tests: a store's whole content as values to compare, and the CLI
run in process over a given source storage."""

from __future__ import annotations

import os

import orjson
from click.testing import CliRunner

from factflow_storage.cli.main import cli
from factflow_storage.registry import create_storage_provider

# The one metadata field that rightly differs at a destination: when it was stored there.
WRITTEN_AT = "created_at"


def clean_env(extra: dict[str, str]) -> dict[str, str | None]:
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("FACTFLOW_")}
    env.update(extra)
    return env


def run(env: dict, *args: str):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False, prog_name="factflow")


def snapshot(uri: str, options: dict, prefix: str = "executions/") -> dict:
    """Every object under ``prefix`` (bytes and metadata but the write time), every
    execution record and every lineage index record of the store at ``uri``."""
    with create_storage_provider(uri, options, hooks=False) as provider:
        objects = {}
        for info in provider.list(prefix):
            with provider.open(info.key) as stream:
                blob = {k: v for k, v in stream.metadata.items() if k != WRITTEN_AT}
                objects[info.key] = (stream.read(), blob)
        records = {name: orjson.loads(provider.get_record(name)) for name in provider.list_records("executions/")}
        # A reference's written_at, like an object's created_at, says when it was made there.
        lineage = {name: _without_written_at(provider.get_record(name)) for name in provider.list_records("lineage/")}
    return {"objects": objects, "records": records, "lineage": lineage}


def execution_view(uri: str, execution_id: str, options: dict | None = None) -> tuple[dict, dict | None]:
    """One execution's objects (as ``snapshot`` gives them) and its record."""
    whole = snapshot(uri, options or {}, f"executions/{execution_id}/")
    return whole["objects"], whole["records"].get(f"executions/{execution_id}.json")


def one_line_error(result, says: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert says in result.stderr, result.stderr


def _without_written_at(raw: bytes | None) -> object:
    if not raw:
        return raw
    entry = orjson.loads(raw)
    if isinstance(entry, dict):
        entry.pop("written_at", None)
    return entry

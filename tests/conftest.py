"""Fixtures shared by the suite: a storage target per provider kind.

A ``StorageTarget`` says how to reach one empty storage: its URI, the provider options
and the environment a CLI subprocess needs. Provider-generic tests take ``storage`` (run
once per provider kind); the contract suite takes ``provider``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

from factflow_storage import create_storage_provider


@dataclass
class StorageTarget:
    kind: str
    uri: str
    options: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    def open(self):
        return create_storage_provider(self.uri, self.options)

    def cli_env(self) -> dict:
        """The environment for a ``factflow`` subprocess pointed at this storage."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
        env.update(self.env, FACTFLOW_STORAGE_URI=self.uri)
        return env


def _file_target(request, tmp_path) -> StorageTarget:
    return StorageTarget("file", f"file://{tmp_path / 'storage'}")


STORAGE_KINDS = {"file": _file_target}


@pytest.fixture(params=sorted(STORAGE_KINDS))
def storage(request, tmp_path) -> StorageTarget:
    return STORAGE_KINDS[request.param](request, tmp_path)


@pytest.fixture
def provider(storage):
    opened = storage.open()
    yield opened
    opened.close()


@pytest.fixture
def file_storage(tmp_path) -> StorageTarget:
    return StorageTarget("file", f"file://{tmp_path / 'storage'}")

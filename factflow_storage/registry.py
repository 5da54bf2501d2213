"""URI scheme -> provider class, imported lazily so ``file://`` never imports minio.

The one place providers are built: above them, as it names them (by string), below
everything that opens storage."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from factflow_storage.settings import DEFAULT_STORAGE_URI, load_settings
# Re-exported: callers that open storage parse its URI through the registry.
from factflow_storage.storage_uri import SCHEMES, StorageURI, check_bucket_name, parse_storage_uri
from factflow_storage.store import Store

__all__ = ["PROVIDERS", "StorageURI", "check_bucket_name", "create_storage_provider", "open_provider",
           "parse_storage_uri"]

if TYPE_CHECKING:
    from factflow_storage.settings import Settings

PROVIDERS: dict[str, str] = {
    "file": "factflow_storage.providers.filesystem:FilesystemProvider",
    "minio": "factflow_storage.providers.minio:MinioProvider",
    "s3": "factflow_storage.providers.minio:MinioProvider",
}
assert sorted(PROVIDERS) == sorted(SCHEMES)


def create_storage_provider(uri: str = DEFAULT_STORAGE_URI,
                            options: Mapping[str, Any] | None = None, *, hooks: bool = True) -> Store:
    """Open the provider for ``uri`` (``options`` are its settings: MinIO endpoint...),
    under the domain layer's ``Store``.

    Without ``options`` (a pipeline opening storage from Python) they come from the
    settings in force, ``FACTFLOW_*`` variables and the config file, as for the CLI.
    ``hooks=False`` leaves out the write hooks (the S3 write journal): for a copy of
    finished executions, which nobody follows live.
    """
    parsed = parse_storage_uri(uri)
    if options is None:
        options = load_settings({"storage_uri": uri}).provider_options()
    provider = _load(PROVIDERS[parsed.scheme])(parsed, **dict(options))
    if not hooks:
        provider.remove_write_hooks()
    return Store(provider)


def open_provider(settings: Settings) -> Store:
    """The provider for the storage URI in force: the one place the CLI, ``factflow serve``
    and ``factflow_storage.open_storage`` build one from settings."""
    return create_storage_provider(settings.storage_uri, settings.provider_options())


def _load(path: str) -> Any:
    module_name, _, name = path.partition(":")
    return getattr(importlib.import_module(module_name), name)

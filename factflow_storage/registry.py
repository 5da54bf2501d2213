"""URI scheme -> provider class, imported lazily so ``file://`` never imports minio."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from factflow_storage.errors import ConfigError
from factflow_storage.protocol import StorageProtocol
from factflow_storage.settings import DEFAULT_STORAGE_URI, load_settings

PROVIDERS: dict[str, str] = {
    "file": "factflow_storage.providers.filesystem:FilesystemProvider",
    "minio": "factflow_storage.providers.minio:MinioProvider",
    "s3": "factflow_storage.providers.minio:MinioProvider",
}


@dataclass(frozen=True, slots=True)
class StorageURI:
    scheme: str
    location: str  # a path for file://, the bucket for minio:// and s3://
    prefix: str = ""  # minio://bucket/prefix -> "prefix/"
    raw: str = ""


def parse_storage_uri(uri: str) -> StorageURI:
    """The one place a storage URI is parsed."""
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in PROVIDERS:
        known = ", ".join(f"{name}://" for name in sorted(PROVIDERS))
        raise ConfigError(f"unknown storage URI {uri!r}: expected one of {known}")
    if scheme == "file":
        path = unquote(rest)
        if not path:
            raise ConfigError(f"storage URI {uri!r} names no path")
        return StorageURI(scheme, path, raw=uri)
    parts = urlsplit(f"{scheme}://{rest}")
    bucket = parts.netloc
    if not bucket:
        raise ConfigError(f"storage URI {uri!r} names no bucket")
    prefix = unquote(parts.path).strip("/")
    return StorageURI(scheme, bucket, f"{prefix}/" if prefix else "", raw=uri)


def create_storage_provider(uri: str = DEFAULT_STORAGE_URI,
                            options: Mapping[str, Any] | None = None) -> StorageProtocol:
    """Open the provider for ``uri``; ``options`` are provider settings (MinIO endpoint...).

    Without ``options`` (a pipeline opening storage from Python) they come from the
    settings in force, ``FACTFLOW_*`` variables and the config file, as for the CLI.
    """
    parsed = parse_storage_uri(uri)
    if options is None:
        options = load_settings({"storage_uri": uri}).provider_options()
    module_name, _, class_name = PROVIDERS[parsed.scheme].partition(":")
    provider_class = getattr(importlib.import_module(module_name), class_name)
    return provider_class(parsed, **dict(options or {}))

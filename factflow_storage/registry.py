"""URI scheme -> provider class, imported lazily so ``file://`` never imports minio."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from factflow_storage.errors import ConfigError
from factflow_storage.protocol import StorageProtocol
from factflow_storage.settings import DEFAULT_STORAGE_URI, load_settings

if TYPE_CHECKING:
    from factflow_storage.settings import Settings

PROVIDERS: dict[str, str] = {
    "file": "factflow_storage.providers.filesystem:FilesystemProvider",
    "minio": "factflow_storage.providers.minio:MinioProvider",
    "s3": "factflow_storage.providers.minio:MinioProvider",
}

# Write hooks each provider gets when opened here: S3 servers cannot push changes, so
# watchers poll a journal the writers keep (``factflow_storage.watch.journal``).
WRITE_HOOKS: dict[str, tuple[str, ...]] = {
    "minio": ("factflow_storage.watch.s3_sources:journal_hook",),
    "s3": ("factflow_storage.watch.s3_sources:journal_hook",),
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
        hint = f"; did you mean file://{uri}?" if not sep and uri else ""
        raise ConfigError(f"unknown storage URI {uri!r}: expected one of {known}{hint}")
    if scheme == "file":
        path = unquote(rest)
        if not path:
            raise ConfigError(f"storage URI {uri!r} names no path")
        return StorageURI(scheme, path, raw=uri)
    parts = urlsplit(f"{scheme}://{rest}")
    bucket = parts.netloc
    if not bucket:
        raise ConfigError(f"storage URI {uri!r} names no bucket")
    check_bucket_name(bucket, uri)
    prefix = unquote(parts.path).strip("/")
    return StorageURI(scheme, bucket, f"{prefix}/" if prefix else "", raw=uri)


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def check_bucket_name(bucket: str, uri: str) -> None:
    """S3's bucket naming rules, checked up front: the minio client would otherwise fail
    with a ValueError of its own on the first request."""
    rule = None
    if not _BUCKET.match(bucket):
        rule = "3 to 63 characters: lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
    elif ".." in bucket or ".-" in bucket or "-." in bucket:
        rule = "no '..', '.-' or '-.'"
    elif _IP_ADDRESS.match(bucket):
        rule = "not an IP address"
    if rule:
        raise ConfigError(f"invalid bucket name {bucket!r} in storage URI {uri!r}: {rule}")


def create_storage_provider(uri: str = DEFAULT_STORAGE_URI,
                            options: Mapping[str, Any] | None = None, *, hooks: bool = True) -> StorageProtocol:
    """Open the provider for ``uri``; ``options`` are provider settings (MinIO endpoint...).

    Without ``options`` (a pipeline opening storage from Python) they come from the
    settings in force, ``FACTFLOW_*`` variables and the config file, as for the CLI.
    ``hooks=False`` leaves out the write hooks (the S3 write journal): for a copy of
    finished executions, which nobody follows live.
    """
    parsed = parse_storage_uri(uri)
    if options is None:
        options = load_settings({"storage_uri": uri}).provider_options()
    provider = _load(PROVIDERS[parsed.scheme])(parsed, **dict(options))
    for hook in WRITE_HOOKS.get(parsed.scheme, ()) if hooks else ():
        provider.add_write_hook(_load(hook)(provider))
    return provider


def open_provider(settings: Settings) -> StorageProtocol:
    """The provider for the storage URI in force: the one place the CLI, ``factflow serve``
    and ``factflow_storage.open_storage`` build one from settings."""
    return create_storage_provider(settings.storage_uri, settings.provider_options())


def _load(path: str) -> Any:
    module_name, _, name = path.partition(":")
    return getattr(importlib.import_module(module_name), name)

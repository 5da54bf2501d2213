"""Storage URIs, parsed in this one place; the registry (``factflow_storage.registry``)
maps their schemes to providers, and the providers take them parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from factflow_storage.errors import ConfigError

# The schemes the registry serves (``registry.PROVIDERS`` has one entry for each).
SCHEMES = ("file", "minio", "s3")


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
    if not sep or scheme not in SCHEMES:
        known = ", ".join(f"{name}://" for name in sorted(SCHEMES))
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

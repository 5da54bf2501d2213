"""Settings, highest first: command-line options, ``FACTFLOW_*`` variables, a TOML file,
defaults. Each value remembers where it came from, for ``factflow config show``."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factflow_storage.errors import ConfigError

DEFAULT_STORAGE_URI = "file://./output/storage"
DEFAULT_ARCHIVE_TTL = 3600.0

logger = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``1d``, ``500ms`` (a bare number is seconds) -> seconds;
    ValueError otherwise. The one grammar for every duration a user writes."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    env: str
    toml_path: tuple[str, ...]
    default: Any = None
    secret: bool = False


FIELDS = (
    Field("storage_uri", "FACTFLOW_STORAGE_URI", ("storage_uri",), DEFAULT_STORAGE_URI),
    Field("api_url", "FACTFLOW_API_URL", ("api_url",)),
    Field("api_token", "FACTFLOW_API_TOKEN", ("api_token",), secret=True),
    Field("api_cors_origins", "FACTFLOW_API_CORS_ORIGINS", ("api_cors_origins",)),
    Field("archive_max_jobs", "FACTFLOW_ARCHIVE_MAX_JOBS", ("archive", "max_jobs")),
    Field("archive_max_bytes", "FACTFLOW_ARCHIVE_MAX_BYTES", ("archive", "max_bytes")),
    Field("archive_idle", "FACTFLOW_ARCHIVE_IDLE", ("archive", "idle")),
    Field("minio_endpoint", "FACTFLOW_MINIO_ENDPOINT", ("minio", "endpoint")),
    Field("minio_access_key", "FACTFLOW_MINIO_ACCESS_KEY", ("minio", "access_key")),
    Field("minio_secret_key", "FACTFLOW_MINIO_SECRET_KEY", ("minio", "secret_key"), secret=True),
    Field("minio_secure", "FACTFLOW_MINIO_SECURE", ("minio", "secure")),
    Field("minio_region", "FACTFLOW_MINIO_REGION", ("minio", "region")),
    Field("minio_create_bucket", "FACTFLOW_MINIO_CREATE_BUCKET", ("minio", "create_bucket")),
    Field("archive_ttl", "FACTFLOW_ARCHIVE_TTL", ("archive", "ttl")),
    # Where a server may copy executions to: NAME=URI pairs, comma-separated (or a TOML
    # table). Clients name one; they never send a URI.
    Field("copy_destinations", "FACTFLOW_COPY_DESTINATIONS", ("copy", "destinations")),
)


@dataclass(frozen=True, slots=True)
class Value:
    value: Any
    source: str


class Settings:
    def __init__(self, values: Mapping[str, Value], config_file: Path | None):
        self._values = dict(values)
        self.config_file = config_file

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name].value
        except KeyError:
            raise AttributeError(name) from None

    def source(self, name: str) -> str:
        return self._values[name].source

    def shown(self) -> list[dict[str, Any]]:
        """Every setting with its source, secrets masked."""
        rows = []
        for field in FIELDS:
            value = self._values[field.name].value
            if field.secret and value:
                value = "****"
            rows.append({"name": field.name, "value": value, "source": self._values[field.name].source})
        return rows

    def provider_options(self, uri: str | None = None) -> dict[str, Any]:
        """Keyword options for the provider the storage URI (or ``uri``) names."""
        if (uri or self.storage_uri).partition("://")[0].lower() == "file":
            return {}
        return {
            "endpoint": self.minio_endpoint,
            "access_key": self.minio_access_key,
            "secret_key": self.minio_secret_key,
            "secure": _parse_bool(self.minio_secure, "minio secure") if self.minio_secure is not None else None,
            "region": self.minio_region,
            "create_bucket": _parse_bool(self.minio_create_bucket, "minio create_bucket")
            if self.minio_create_bucket is not None else False,
        }


    def copy_destination_uris(self) -> dict[str, str]:
        """The operator's named copy destinations: ``{name: storage URI}``."""
        raw = self.copy_destinations
        if not raw:
            return {}
        if isinstance(raw, Mapping):
            pairs = [(str(name), value) for name, value in raw.items()]
        else:
            pairs = [tuple(item.split("=", 1)) if "=" in item else (item, "")  # type: ignore[misc]
                     for item in (part.strip() for part in str(raw).split(",")) if item]
        found = {}
        for name, uri in pairs:
            if not name.strip() or not isinstance(uri, str) or "://" not in uri:
                raise ConfigError(f"copy destinations: {name!r} needs NAME=URI, such as prod=minio://prod-bucket")
            found[name.strip()] = uri.strip()
        return found

    def archive_ttl_seconds(self) -> float:
        """How long the server keeps a finished archive job: seconds, or 30m, 2h, 1d."""
        raw = self.archive_ttl
        if raw is None or str(raw).strip() == "":
            return DEFAULT_ARCHIVE_TTL
        try:
            value = float(raw) if isinstance(raw, (int, float)) else parse_duration(str(raw).lower())
        except ValueError:
            value = -1
        if value <= 0:
            raise ConfigError(f"FACTFLOW_ARCHIVE_TTL must be a positive duration like 3600, 30m or 2h, not {raw!r}")
        return value


def config_file_path(explicit: str | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """The config file in force and whether it was named (a named file must exist)."""
    if explicit:
        return Path(explicit), True
    if env.get("FACTFLOW_CONFIG"):
        return Path(env["FACTFLOW_CONFIG"]), True
    for candidate in (Path("factflow.toml"), Path.home() / ".config" / "factflow" / "config.toml"):
        if candidate.is_file():
            return candidate, False
    return None, False


def load_settings(overrides: Mapping[str, Any] | None = None, *, config: str | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    path, named = config_file_path(config, env)
    table = _read_toml(path, named) if path else {}
    for dotted in unknown_keys(table):
        logger.warning("config file %s: unknown key %r ignored", path, dotted)
    values = {}
    for field in FIELDS:
        if field.name in overrides:
            values[field.name] = Value(overrides[field.name], "command line")
        elif env.get(field.env):
            values[field.name] = Value(env[field.env], f"env {field.env}")
        elif (found := _lookup(table, field.toml_path)) is not None:
            values[field.name] = Value(found, f"config {path}")
        else:
            values[field.name] = Value(field.default, "default")
    return Settings(values, path)


def _read_toml(path: Path, named: bool) -> dict[str, Any]:
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        if named:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    import tomllib  # only with a config file: its import is a tenth of a small `get`

    with handle:
        try:
            return tomllib.load(handle)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from err


def unknown_keys(table: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[str]:
    """Dotted names in the TOML table that no setting reads (a typo is silent otherwise)."""
    known = {field.toml_path for field in FIELDS}
    sections = {field.toml_path[: i + 1] for field in FIELDS for i in range(len(field.toml_path) - 1)}
    found = []
    for name, value in table.items():
        here = (*path, str(name))
        if here in sections and isinstance(value, Mapping):
            found.extend(unknown_keys(value, here))
        elif here not in known:
            found.append(".".join(here))
    return found


def _lookup(table: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = table
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _parse_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{what} must be true or false, not {value!r}")

"""Settings, highest first: command-line options, ``FACTFLOW_*`` variables, a TOML file,
defaults. Each value remembers where it came from, for ``factflow config show``."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
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
    # What the TOML file may give (a variable always gives text).
    types: tuple[type, ...] = (str,)


def _setting(env: str, toml_path: tuple[str, ...], default: Any = None, *, secret: bool = False,
             types: tuple[type, ...] = (str,)) -> Any:
    """A ``Settings`` field: where its value is read from, and whether it is shown masked."""
    return field(default=default, metadata={"setting": (env, toml_path, default, secret, types)})


# A value as its source gave it: text from a variable, any of ``types`` from TOML.
Number = int | float


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The settings in force; ``sources`` says where each came from (``config show``)."""

    storage_uri: str = _setting("FACTFLOW_STORAGE_URI", ("storage_uri",), DEFAULT_STORAGE_URI)
    api_url: str | None = _setting("FACTFLOW_API_URL", ("api_url",))
    api_token: str | None = _setting("FACTFLOW_API_TOKEN", ("api_token",), secret=True)
    api_cors_origins: str | list[str] | None = _setting("FACTFLOW_API_CORS_ORIGINS", ("api_cors_origins",),
                                                        types=(str, list))
    archive_max_jobs: str | int | None = _setting("FACTFLOW_ARCHIVE_MAX_JOBS", ("archive", "max_jobs"),
                                                  types=(str, int))
    archive_max_bytes: str | int | None = _setting("FACTFLOW_ARCHIVE_MAX_BYTES", ("archive", "max_bytes"),
                                                   types=(str, int))
    archive_idle: str | Number | None = _setting("FACTFLOW_ARCHIVE_IDLE", ("archive", "idle"),
                                                 types=(str, int, float))
    minio_endpoint: str | None = _setting("FACTFLOW_MINIO_ENDPOINT", ("minio", "endpoint"))
    minio_access_key: str | None = _setting("FACTFLOW_MINIO_ACCESS_KEY", ("minio", "access_key"))
    minio_secret_key: str | None = _setting("FACTFLOW_MINIO_SECRET_KEY", ("minio", "secret_key"), secret=True)
    minio_secure: str | bool | None = _setting("FACTFLOW_MINIO_SECURE", ("minio", "secure"), types=(str, bool))
    minio_region: str | None = _setting("FACTFLOW_MINIO_REGION", ("minio", "region"))
    minio_create_bucket: str | bool | None = _setting("FACTFLOW_MINIO_CREATE_BUCKET", ("minio", "create_bucket"),
                                                      types=(str, bool))
    archive_ttl: str | Number | None = _setting("FACTFLOW_ARCHIVE_TTL", ("archive", "ttl"),
                                                types=(str, int, float))
    # Where a server may copy executions to: NAME=URI pairs, comma-separated (or a TOML
    # table). Clients name one; they never send a URI.
    copy_destinations: str | dict[str, str] | None = _setting("FACTFLOW_COPY_DESTINATIONS", ("copy", "destinations"),
                                                              types=(str, dict))
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def shown(self) -> list[dict[str, Any]]:
        """Every setting with its source, secrets masked."""
        rows = []
        for setting in FIELDS:
            value = getattr(self, setting.name)
            if setting.secret and value:
                value = "****"
            rows.append({"name": setting.name, "value": value, "source": self.source(setting.name)})
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


FIELDS = tuple(Field(item.name, *item.metadata["setting"]) for item in fields(Settings) if "setting" in item.metadata)


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
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in FIELDS:
        if setting.name in overrides:
            values[setting.name], sources[setting.name] = overrides[setting.name], "command line"
        elif env.get(setting.env):
            values[setting.name], sources[setting.name] = env[setting.env], f"env {setting.env}"
        elif (found := _lookup(table, setting.toml_path)) is not None:
            if not isinstance(found, setting.types):
                raise ConfigError(f"config file {path}: {'.'.join(setting.toml_path)} must be "
                                  f"{' or '.join(_KINDS[kind] for kind in setting.types)}, not {found!r}")
            values[setting.name], sources[setting.name] = found, f"config {path}"
        else:
            sources[setting.name] = "default"
    return Settings(**values, config_file=path, sources=MappingProxyType(sources))


_KINDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "an array",
          dict: "a table"}


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
    known = {setting.toml_path for setting in FIELDS}
    sections = {setting.toml_path[: i + 1] for setting in FIELDS for i in range(len(setting.toml_path) - 1)}
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

"""What one server lets archive jobs cost: jobs packing at once, bytes of archives held,
and how long a job lives without anyone asking for it.

A ``prepare`` is a few bytes that can make the server write gigabytes, so: identical
requests share one job; past ``max_jobs`` packing or ``max_bytes`` held a new job is
refused (503, retry later) and a packing job that would cross ``max_bytes`` fails; a
job nobody polled (status or download) for ``idle`` seconds is cancelled and removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from factflow_storage.errors import ConfigError
from factflow_storage.settings import Settings, parse_duration

MAX_JOBS_ENV = "FACTFLOW_ARCHIVE_MAX_JOBS"
MAX_BYTES_ENV = "FACTFLOW_ARCHIVE_MAX_BYTES"
IDLE_ENV = "FACTFLOW_ARCHIVE_IDLE"
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_jobs: int = 4
    max_bytes: int = 20 * 1024**3
    idle: float = 600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ArchiveLimits:
        """From ``FACTFLOW_ARCHIVE_*`` values (as ``from_settings`` passes them)."""
        default = cls()
        return cls(max_jobs=_count(env.get(MAX_JOBS_ENV), MAX_JOBS_ENV, default.max_jobs),
                   max_bytes=parse_size(env.get(MAX_BYTES_ENV), MAX_BYTES_ENV, default.max_bytes),
                   idle=_seconds(env.get(IDLE_ENV), IDLE_ENV, default.idle))


    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        """From the settings in force (command line, environment, config file)."""
        values = {MAX_JOBS_ENV: settings.archive_max_jobs, MAX_BYTES_ENV: settings.archive_max_bytes,
                  IDLE_ENV: settings.archive_idle}
        return cls.from_env({name: str(value) for name, value in values.items() if value is not None})


def _count(raw: str | None, name: str, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


def parse_size(raw: str | None, name: str, default: int) -> int:
    """``500M``, ``20G``, ``1048576`` (binary units) -> bytes."""
    if raw is None or not raw.strip():
        return default
    text = raw.strip().lower().removesuffix("ib").removesuffix("b")
    unit = text[-1:] if text[-1:] in _UNITS and text[-1:] else ""
    number = text[:-1] if unit else text
    if not number.strip().isdigit() or int(number) < 1:
        raise ConfigError(f"{name} must be a size like 500M or 20G, not {raw!r}")
    return int(number) * _UNITS[unit]


def _seconds(raw: str | None, name: str, default: float) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        value = parse_duration(raw)
    except ValueError:
        value = -1
    if value <= 0:
        raise ConfigError(f"{name} must be a positive duration like 90s or 10m, not {raw!r}")
    return value

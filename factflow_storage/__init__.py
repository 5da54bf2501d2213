"""factflow storage: where pipelines write their artefacts and operators find them.

A pipeline opens storage with ``open_storage()`` (``factflow_storage.pipeline``), which
returns a ``PipelineStorage``; the errors it raises are importable from here too. Names
are imported on first use, so ``import factflow_storage`` costs next to nothing and never
imports minio or bottle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from factflow_storage.errors import (BadCredentials, BadRequest, BucketMissing, ConfigError, Conflict,
                                         InvalidKey, InvalidRange, NotFound, StorageError, TooLarge, Unavailable)
    from factflow_storage.pipeline import PipelineStorage, open_storage
    from factflow_storage.protocol import ObjectInfo, ObjectStream, StorageProtocol
    from factflow_storage.registry import create_storage_provider

__all__ = [
    "BadCredentials", "BadRequest", "BucketMissing", "ConfigError", "Conflict", "InvalidKey", "InvalidRange",
    "NotFound", "ObjectInfo", "ObjectStream", "PipelineStorage", "StorageError", "StorageProtocol", "TooLarge",
    "Unavailable", "create_storage_provider", "open_storage",
]
__version__ = "0.1.0"

# Where each public name lives; imported lazily, so `factflow --help` and every submodule
# import skip the registry, the protocol and the providers.
_HOMES = {
    "open_storage": "pipeline", "PipelineStorage": "pipeline",
    "create_storage_provider": "registry",
    "ObjectInfo": "protocol", "ObjectStream": "protocol", "StorageProtocol": "protocol",
    **dict.fromkeys(("BadCredentials", "BadRequest", "BucketMissing", "ConfigError", "Conflict", "InvalidKey",
                     "InvalidRange", "NotFound", "StorageError", "TooLarge", "Unavailable"), "errors"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""factflow storage: where pipelines write their artefacts and operators find them."""

from __future__ import annotations

from typing import Any

__all__ = ["create_storage_provider"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy, so `factflow --help` and every submodule import skip the registry and the protocol.
    if name == "create_storage_provider":
        from factflow_storage.registry import create_storage_provider

        return create_storage_provider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

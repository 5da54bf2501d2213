"""factflow storage: where pipelines write their artefacts and operators find them."""

from factflow_storage.registry import create_storage_provider

__all__ = ["create_storage_provider"]
__version__ = "0.1.0"

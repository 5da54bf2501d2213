"""Options shared by many commands, and the application object they reach."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import click

from factflow_storage.cli.render import FORMATS

if TYPE_CHECKING:
    from factflow_storage.interface import Service
    from factflow_storage.store import Store
    from factflow_storage.service import StorageService
    from factflow_storage.settings import Settings


class Duration(click.ParamType):
    """``30s``, ``5m``, ``1h`` (a bare number is seconds); converts to seconds."""

    name = "duration"

    def convert(self, value: Any, param, ctx) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        from factflow_storage.settings import parse_duration

        try:
            return parse_duration(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


class App:
    """Built once by the root group; opens storage (or the API client) on first use."""

    def __init__(self, settings: Settings, output: str, timeout: float | None):
        self.settings = settings
        self.output = output
        self.timeout = timeout

    @property
    def remote(self) -> bool:
        return bool(self.settings.api_url)

    @cached_property
    def service(self) -> Service:
        if self.settings.api_url:
            from factflow_storage.client import RemoteService

            return RemoteService(self.settings.api_url, token=self.settings.api_token, timeout=self.timeout)
        return self.local_service()

    def watch_service(self) -> Service:
        """For ``watch``, which may rightly wait for a root a pipeline has yet to create."""
        return self.service if self.remote else self.local_service(guard_root=False)

    def local_service(self, *, guard_root: bool = True) -> StorageService:
        from factflow_storage.service import StorageService

        return StorageService(self.provider if guard_root else self.local_provider(guard_root=False))

    @cached_property
    def provider(self) -> Store:
        """The storage in force, opened directly, once: the local service's, and a copy's
        source (which reads records and objects the service does not offer)."""
        return self.local_provider()

    def local_provider(self, *, guard_root: bool = True) -> Store:
        from factflow_storage.registry import open_provider

        store = open_provider(self.settings)
        if guard_root and hasattr(store, "root"):
            from factflow_storage.cli.root_check import ExistingRoot

            # Over the store: what a command reads is guarded, not what a write reads.
            return cast("Store", ExistingRoot(store))
        return store

    def open_object(self, key: str):
        """``service.open(key)``; a whole S3 object in direct mode first tries one request
        without minio-py, whose import costs more than a small object's transfer."""
        if not self.remote and "service" not in self.__dict__:
            from factflow_storage.registry import parse_storage_uri

            uri = parse_storage_uri(self.settings.storage_uri)
            if uri.scheme != "file":
                from factflow_storage.providers.s3_quick import quick_open

                stream = quick_open(uri, self.settings.provider_options(), key)
                if stream is not None:
                    return stream
        return self.service.open(key)

    def fmt(self, output: str | None) -> str:
        return output or self.output


pass_app = click.make_pass_decorator(App)


def output_option(command):
    """``--output`` on the command itself; falls back to the root group's."""
    return click.option("--output", "-o", type=click.Choice(FORMATS), default=None,
                        help="Output format (table by default).")(command)

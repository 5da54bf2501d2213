"""The WSGI layer around the bottle app: what must hold for every answer, errors included.

- CORS preflights are answered here (no route has OPTIONS) and allowed origins get
  their CORS headers on every answer;
- a 304 gets back its ``Last-Modified`` (bottle drops it; RFC 9110 15.4.5 wants it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from factflow_storage.server.http import LAST_MODIFIED_ENV, error_body
from factflow_storage.server.origin import OriginPolicy
from factflow_storage.service import json_bytes


class Frontend:
    def __init__(self, app: Callable[..., Iterable[bytes]], origins: OriginPolicy):
        self.app = app
        self.origins = origins

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        if self.origins.is_preflight(method, environ):
            return self._preflight(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = list(headers)
            names = {name.lower() for name, _ in headers}
            if status.startswith("304") and LAST_MODIFIED_ENV in environ and "last-modified" not in names:
                headers.append(("Last-Modified", environ[LAST_MODIFIED_ENV]))
            headers += self.origins.response_headers(environ)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)

    def _preflight(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status, headers = self.origins.preflight(environ)
        if status == 204:
            start_response("204 No Content", headers)
            return [b""]
        body = json_bytes(error_body(403, "access_denied",
                                     f"origin {environ.get('HTTP_ORIGIN', '')[:100]!r} is not allowed"))
        start_response("403 Forbidden", headers + [("Content-Type", "application/json"),
                                                   ("Content-Length", str(len(body)))])
        return [body]

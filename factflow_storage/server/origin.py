"""Which web pages may use the API: the server's own origin, and those named in
``FACTFLOW_API_CORS_ORIGINS`` (comma-separated, e.g. ``http://localhost:3000``; default
none).

A browser lets any page send a "simple" POST (``text/plain``) or, after a preflight,
any request to any origin; it only hides the answer. So state-changing requests (POST,
PUT, DELETE, PATCH) whose ``Origin`` is neither the server's nor an allowed one are
refused before they do anything. Requests without ``Origin`` (curl, the CLI) are not
from a page and pass. Allowed origins get CORS headers and preflight answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from factflow_storage.errors import AccessDenied, ConfigError

CORS_ENV = "FACTFLOW_API_CORS_ORIGINS"
UNSAFE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
ALLOW_METHODS = "GET, HEAD, PUT, POST, DELETE"
ALLOW_HEADERS = ("Authorization, Content-Type, Range, If-Match, If-None-Match, If-Modified-Since, "
                 "If-Unmodified-Since, If-Range, Last-Event-ID, X-Factflow-Metadata")
EXPOSE_HEADERS = "ETag, Last-Modified, Content-Range, Content-Disposition, Location, Retry-After"
MAX_AGE = "600"


def parse_origins(value: str | Iterable[str] | None) -> frozenset[str]:
    """``scheme://host[:port]`` entries, normalised; anything else is a config error."""
    if not value:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    origins = set()
    for item in (item.strip() for item in items):
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
                or parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigError(f"{CORS_ENV}: {item!r} is not an origin like http://localhost:3000")
        origins.add(f"{parts.scheme}://{parts.netloc.lower()}")
    return frozenset(origins)


class OriginPolicy:
    def __init__(self, allowed: Iterable[str] = ()):
        self.allowed = frozenset(allowed)

    def is_own(self, origin: str, environ: Mapping[str, str]) -> bool:
        host = (environ.get("HTTP_HOST") or "").strip().lower()
        parts = urlsplit(origin)
        return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == host

    def is_allowed(self, origin: str | None) -> bool:
        return origin is not None and origin.lower() in self.allowed

    def is_preflight(self, method: str, environ: Mapping[str, str]) -> bool:
        return method == "OPTIONS" and "HTTP_ORIGIN" in environ \
            and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ

    def refusal(self, method: str, environ: Mapping[str, str]) -> AccessDenied | None:
        origin = environ.get("HTTP_ORIGIN")
        if method not in UNSAFE_METHODS or origin is None:
            return None
        if self.is_own(origin, environ) or self.is_allowed(origin):
            return None
        return AccessDenied(f"cross-origin {method} from {origin[:100]!r} refused; allow the origin with "
                            f"{CORS_ENV}")

    def response_headers(self, environ: Mapping[str, str]) -> list[tuple[str, str]]:
        """CORS headers for the answer to an allowed origin (always ``Vary: Origin``)."""
        origin = environ.get("HTTP_ORIGIN")
        headers = [("Vary", "Origin")]
        if self.is_allowed(origin):
            headers += [("Access-Control-Allow-Origin", origin or ""),
                        ("Access-Control-Expose-Headers", EXPOSE_HEADERS)]
        return headers

    def preflight(self, environ: Mapping[str, str]) -> tuple[int, list[tuple[str, str]]]:
        """The status and headers of the answer to a preflight (204 allowed, 403 not)."""
        origin = environ.get("HTTP_ORIGIN")
        wanted = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "").strip().upper()
        if not self.is_allowed(origin) or wanted not in ALLOW_METHODS.replace(",", " ").split():
            return 403, [("Vary", "Origin")]
        return 204, [("Vary", "Origin"), ("Access-Control-Allow-Origin", origin or ""),
                     ("Access-Control-Allow-Methods", ALLOW_METHODS),
                     ("Access-Control-Allow-Headers", ALLOW_HEADERS),
                     ("Access-Control-Max-Age", MAX_AGE)]

"""The S3 endpoint setting as ``host:port`` and a TLS choice, for every S3 client here."""

from __future__ import annotations

from factflow_storage.errors import ConfigError


def split_endpoint(endpoint: str, secure: bool | None) -> tuple[str, bool]:
    """``host:port`` and whether to use TLS; a scheme in the endpoint decides it, else loopback is plain."""
    scheme, sep, rest = endpoint.partition("://")
    host = rest if sep else endpoint
    host = host.rstrip("/")
    if "/" in host:
        raise ConfigError(f"FACTFLOW_MINIO_ENDPOINT must be host:port, not {endpoint!r}")
    if sep and secure is None:
        secure = scheme.lower() == "https"
    if secure is None:
        hostname = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        secure = not (hostname in ("localhost", "::1") or hostname.startswith("127."))
    return host, secure

"""Whether an S3 server streams bucket notifications (MinIO's listen extension).

MinIO answers ``GET /BUCKET?events=...`` with a stream of JSON lines. AWS and radosgw
treat the same request as a plain bucket listing, and minio-py's
``listen_bucket_notification`` then re-sends it forever, taking each XML answer for a
dropped stream. So the request is made once here and its answer inspected: an XML
listing (or any error) means "no listen API", decided in one round trip. The write
journal asks it (a server that pushes needs none); watchers read the stream it opens.
"""

from __future__ import annotations

import weakref

from factflow_storage.errors import Unavailable
from factflow_storage.keys import RESERVED_PREFIX

CREATED = "s3:ObjectCreated:*"
_PROBE_PREFIX = RESERVED_PREFIX + "probe/"


def client_of(provider):
    # The provider's own client: same endpoint, credentials, region and TLS settings.
    return provider._client


# minio-py's public listen call cannot tell a listing from a stream (see above), so the
# request it would make is made through the client's request executor directly.


def open_listen(provider, prefix: str):
    """The raw listen response, or None when the server has no listen API."""
    import urllib3

    try:
        from factflow_storage.providers import s3_client

        response = s3_client.signed_get(client_of(provider), provider.bucket, {
            "prefix": provider.prefix + prefix, "suffix": "", "events": [CREATED]}, stream=True)
    except ValueError:
        return None  # minio-py refuses outright on AWS hosts
    except (OSError, urllib3.exceptions.HTTPError) as err:
        raise Unavailable(f"cannot reach S3 at {provider.endpoint}: {err}") from err
    except Exception as err:  # S3Error: the server refused the request, so it has no such API
        if type(err).__name__ == "S3Error":
            return None
        raise
    content_type = (response.headers.get("Content-Type") or "").lower()
    if response.status != 200 or "xml" in content_type:
        response.close()
        response.release_conn()
        return None
    return response


_listen_known: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def listen_supported(provider) -> bool:
    """Whether the provider's server streams bucket notifications (probed once per provider)."""
    known = _listen_known.get(provider)
    if known is None:
        response = open_listen(provider, _PROBE_PREFIX)
        known = response is not None
        if response is not None:
            response.close()
            response.release_conn()
        _listen_known[provider] = known
    return known

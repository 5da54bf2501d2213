"""What an archive holds besides the objects, written by the packer and read by the
downloader: the manifest's name, and a sidecar's bytes (the same bytes a direct download
writes, so both modes leave byte-identical trees)."""

from __future__ import annotations

from typing import Any

import orjson

MANIFEST_NAME = "_factflow/manifest.json"


def sidecar_bytes(blob: dict[str, Any]) -> bytes:
    return orjson.dumps(blob, option=orjson.OPT_INDENT_2) + b"\n"

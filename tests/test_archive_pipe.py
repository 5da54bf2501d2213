"""The pipe between the archive packer and the HTTP answer: whole pieces go on as they
came, parts of pieces are cut to the size asked, and the bytes are the same either way."""

from __future__ import annotations

import hashlib

from factflow_storage.archive.pipe import Pipe


def _blob(seed: int, size: int) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size]


def test_the_pipe_hands_on_whole_pieces_and_parts_of_pieces_alike():
    pipe = Pipe(chunk=1024, depth=64)
    pieces = [_blob(n, size) for n, size in enumerate([1024, 5000, 10, 1024, 3000])]
    for piece in pieces:
        pipe.write(piece)
    pipe.close()
    out = [pipe.read(1024), pipe.read(700)]
    while chunk := pipe.read(1024 if len(out) % 2 else 333):
        out.append(chunk)
    assert b"".join(out) == b"".join(pieces)
    assert all(len(chunk) <= 1024 for chunk in out)
    assert out[0] is not None and len(out[0]) == 1024

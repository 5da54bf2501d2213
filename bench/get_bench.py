"""``factflow storage get`` of one large object on the filesystem provider, against ``cat``.

    python3 bench/get_bench.py [--mib 512] [--repeat 3]

Writes one object of ``--mib`` MiB (random bytes) through the provider into a temp
storage, then times, alternately, in one run (the file is in the page cache for both):

- into a pipe: ``factflow storage get KEY | cat > /dev/null`` vs ``cat FILE | cat > /dev/null``;
- into a file: ``factflow storage get KEY > OUT`` vs ``cat FILE > OUT`` (OUT removed before
  each run, so neither pays for truncating the previous copy).

Targets: ratio <= 1.25 into a pipe, <= 1.1 into a file.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from harness import FACTFLOW, REPEAT, Row, alternate, clean_env, print_rows, timed_shell, wanted

ROWS = ("fs-get-pipe", "fs-get-file")
KEY = "bench/large.bin"
CHUNK = 8 * 1024 * 1024


class _RandomStream:
    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        n = min(n, CHUNK)
        self.left -= n
        return os.urandom(n)


def rows(only: set[str] | None = None, quick: bool = False, repeat: int = REPEAT, mib: int | None = None) -> list[Row]:
    ids = wanted(ROWS, only)
    if not ids:
        return []
    from factflow_storage import create_storage_provider

    mib = mib or (4 if quick else 512)
    work = Path(tempfile.mkdtemp(prefix="factflow-get-bench-"))
    try:
        storage = work / "storage"
        provider = create_storage_provider(f"file://{storage}")
        provider.write(KEY, _RandomStream(mib * 1024 * 1024))
        provider.close()
        source = storage / KEY
        assert source.stat().st_size == mib * 1024 * 1024
        env = clean_env(FACTFLOW_STORAGE_URI=f"file://{storage}")
        get = shlex.join([*FACTFLOW, "storage", "get", KEY])
        out = work / "out.bin"

        def remove_out() -> None:
            out.unlink(missing_ok=True)

        # Once each, unmeasured: the page cache and Python's bytecode cache warm for both.
        timed_shell(f"{get} | cat > /dev/null", env)
        timed_shell(f"cat {shlex.quote(str(source))} > /dev/null", env)
        result = []
        if "fs-get-pipe" in ids:
            ours, theirs = alternate(
                repeat, lambda: timed_shell(f"{get} | cat > /dev/null", env),
                lambda: timed_shell(f"cat {shlex.quote(str(source))} | cat > /dev/null", env))
            result.append(Row("fs-get-pipe", f"`get` {mib} MiB, fs, into a pipe", "`cat FILE | cat`",
                              ours, theirs, "<=", 1.25, runs=repeat))
        if "fs-get-file" in ids:
            target = shlex.quote(str(out))
            ours, theirs = alternate(
                repeat, lambda: timed_shell(f"{get} > {target}", env, before=remove_out),
                lambda: timed_shell(f"cat {shlex.quote(str(source))} > {target}", env, before=remove_out))
            if out.stat().st_size != mib * 1024 * 1024:
                raise SystemExit(f"the copy holds {out.stat().st_size} bytes, not {mib} MiB")
            result.append(Row("fs-get-file", f"`get` {mib} MiB, fs, into a file", "`cat FILE > OUT`",
                              ours, theirs, "<=", 1.1, runs=repeat))
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=REPEAT)
    args = parser.parse_args()
    print_rows(rows(repeat=args.repeat, mib=args.mib))
    return 0


if __name__ == "__main__":
    sys.exit(main())

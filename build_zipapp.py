"""Build ``dist/factflow.pyz``: the whole ``factflow`` command in one file, with shiv.

    python3 -m pip install '.[build]'    # shiv, once, in the repository root
    python3 build_zipapp.py [--output PATH]

Plain ``zipapp`` cannot hold the dependencies: orjson, watchfiles and minio's crypto
libraries are compiled extensions, which Python cannot import from inside a zip. shiv
unpacks them once into ``$SHIV_ROOT`` (default ``~/.shiv``) on first run.

The result is platform-specific: it runs only on the operating system, CPU architecture
and Python minor version it was built with (a start-up check says so in one line instead
of failing on an import). Build one per target; the machine needs only Python to run it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
DEFAULT_OUTPUT = REPO / "dist" / "factflow.pyz"
# What pip needs to build the package; copied so a build never writes into the checkout.
SOURCES = ("setup.cfg", "pyproject.toml", "README.rst", "factflow_storage")

# The start-up check, run before anything else. ``os.uname`` rather than ``platform``, whose
# import costs more than the check.
PREAMBLE = '''\
import os
import sys

BUILT_FOR = ({version!r}, {system!r}, {machine!r})
here = (f"{{sys.version_info[0]}}.{{sys.version_info[1]}}", sys.platform, os.uname().machine)
if here != BUILT_FOR:
    sys.stderr.write(
        "Error: this factflow.pyz holds compiled modules for Python %s on %s-%s and cannot run on "
        "Python %s on %s-%s; build one here with build_zipapp.py\\n" % (*BUILT_FOR, *here))
    sys.exit(1)
'''

# The pyz's ``__main__.py``, in place of shiv's. shiv's bootstrap imports compileall, hashlib,
# subprocess, json and zipfile and parses the archive's directory on every run; once this
# build is unpacked, none of that is needed: put its site-packages where shiv would (before
# the interpreter's own) and call the entry point. The first run, and any run with a SHIV_
# setting other than SHIV_ROOT, goes through shiv's bootstrap as before.
MAIN = '''\
# -*- coding: utf-8 -*-
{preamble}

def _unpacked():
    if any(name.startswith("SHIV_") and name != "SHIV_ROOT" for name in os.environ):
        return None
    root = os.path.expanduser(os.environ.get("SHIV_ROOT") or "~/.shiv")
    name = os.path.basename(os.path.realpath(sys.argv[0]))
    site_packages = os.path.join(root, f"{{name}}_{build_id}", "site-packages")
    return site_packages if os.path.exists(site_packages) else None


site_packages = _unpacked()
if site_packages is None:
    import _bootstrap

    # Compile in this process: shiv's default, a worker per CPU, leaves workers that hold
    # the unpack lock forever when this process is killed mid-compile (kill -9, OOM), and
    # every later run waits on that lock.
    os.environ.setdefault("SHIV_COMPILE_WORKERS", "1")
    _bootstrap.bootstrap()
else:
    import site

    length = len(sys.path)
    index = next((i for i, part in enumerate(sys.path)
                  if os.path.splitext(os.path.basename(part))[0] in ("site-packages", "dist-packages")), length)
    site.addsitedir(site_packages)
    sys.path = sys.path[:index] + sys.path[length:] + sys.path[index:length]
    from {module} import {function}

    sys.exit({function}())
'''
ENTRY_POINT = "factflow_storage.cli.entry:main"


def target() -> tuple[str, str, str]:
    return f"{sys.version_info[0]}.{sys.version_info[1]}", sys.platform, platform.machine()


NEEDS_SHIV = ("build_zipapp.py needs shiv, which is not installed: run "
              "python3 -m pip install '.[build]' in the repository root, then build again")


def copy_sources(target: Path) -> None:
    """``SOURCES`` copied into the new directory ``target``, without bytecode."""
    target.mkdir()
    for name in SOURCES:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, target / name)


def main_source(build_id: str) -> str:
    version, system, machine = target()
    module, function = ENTRY_POINT.split(":")
    return MAIN.format(preamble=PREAMBLE.format(version=version, system=system, machine=machine),
                       build_id=build_id, module=module, function=function)


def replace_main(built: Path, output: Path) -> None:
    """``built`` copied to ``output`` with ``MAIN`` as its ``__main__.py``: every other member,
    its date and mode unchanged, and the shebang line before the archive."""
    data = built.read_bytes()
    prefix = data[:data.index(b"PK\x03\x04")]
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(built) as source, output.open("wb") as sink:
        sink.write(prefix)
        build_id = json.loads(source.read("environment.json"))["build_id"]
        with zipfile.ZipFile(sink, "w") as archive:
            for info in source.infolist():
                body = main_source(build_id).encode() if info.filename == "__main__.py" else source.read(info)
                archive.writestr(info, body)


def build(output: Path, *, quiet: bool = False) -> Path:
    if importlib.util.find_spec("shiv") is None:
        raise SystemExit(NEEDS_SHIV)
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="factflow-pyz-") as scratch:
        work = Path(scratch)
        source = work / "source"
        copy_sources(source)
        partial = work / output.name
        command = [
            sys.executable, "-m", "shiv",
            "--entry-point", ENTRY_POINT,
            "--output-file", str(partial),
            "--python", "/usr/bin/env python3",
            "--compressed",
            # Bytecode is written once, when the pyz first unpacks (py_compile writes even
            # under PYTHONDONTWRITEBYTECODE=1, which would otherwise make every run compile
            # every module from source).
            "--compile-pyc",
            "--reproducible",
            str(source),
            "--disable-pip-version-check",
            "--no-input",
        ]
        completed = subprocess.run(command, capture_output=quiet, text=True)
        if completed.returncode != 0:
            detail = (completed.stderr or "").strip().splitlines()[-20:] if quiet else []
            raise SystemExit("\n".join(["shiv failed:", *detail]))
        with_main = work / "with-main" / output.name
        replace_main(partial, with_main)
        # Move into place only once whole, so a failed build never leaves a broken pyz.
        shutil.move(str(with_main), output)
    output.chmod(0o755)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    parser.add_argument("--quiet", action="store_true", help="hide pip's output unless the build fails")
    args = parser.parse_args(argv)
    built = build(args.output, quiet=args.quiet)
    version, system, machine = target()
    size = built.stat().st_size / 2**20
    print(f"built {built} ({size:.1f} MiB) for Python {version} on {system}-{machine}; "
          "it runs only there (compiled dependencies)")


if __name__ == "__main__":
    main()

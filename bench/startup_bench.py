"""Start-up time: ``factflow --help`` as users get it, against the bare interpreter.

    python3 bench/startup_bench.py [--repeat 10] [--only help-installed,help-pyz]

- ``help-installed``: a throwaway venv with the package installed from a copy of the
  checkout (not editable) and its dependencies from the package index, as a user gets it;
  ``VENV/bin/factflow --help`` vs ``VENV/bin/python -c pass``. Target: ratio <= 2.5. When
  pip cannot reach an index, the venv takes the dependencies from this Python's
  site-packages instead (``--system-site-packages``; its ``.pth`` files then run in both
  commands, which flatters the ratio) and the row says so.
- ``help-pyz``: ``dist/factflow.pyz`` built by ``build_zipapp.py`` into a temp dir, run with
  ``SHIV_ROOT`` in a temp dir after one warm-up run (which unpacks it); ``python3 PYZ --help``
  vs ``python3 -c pass``. Target: ratio <= 3.0.
- ``list-pyz``: ``python3 PYZ storage list`` vs the venv's ``factflow storage list`` on a
  small file store (the demo execution, 16 objects), both with ``PYTHONDONTWRITEBYTECODE=1``
  as many hosts and containers set it (the pyz unpacks into a fresh ``SHIV_ROOT`` under that
  setting too). Target: ratio <= 1.25. The pyz runs on the venv's interpreter, as the
  installed command does: this Python's own site-packages may hold ``.pth`` files (an
  editable install of this checkout, for one) that a host with only Python has not, and
  that would count against the pyz alone. The pyz imports only its own unpacked copy.

Each run is a few tens of milliseconds, so the default takes more runs than the others.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from harness import Row, alternate, print_rows, timed, wanted

ROWS = ("help-installed", "help-pyz", "list-pyz")
REPO = Path(__file__).resolve().parent.parent
REPEAT = 10


def _plain_env(**extra: str) -> dict[str, str]:
    """No PYTHON* variables (PYTHONPATH would shadow the installed copy), no settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "PYTHON"))}
    env.update(extra)
    return env


def make_venv(work: Path) -> tuple[Path, bool]:
    """A venv with the package installed from a copy of the checkout: its ``bin``, and
    whether it fell back to this Python's site-packages for the dependencies."""
    source = work / "source"
    _zipapp().copy_sources(source)
    env = _plain_env()
    shared = False
    for shared in (False, True):
        venv = work / ("venv-shared" if shared else "venv")
        subprocess.run([sys.executable, "-m", "venv", *(["--system-site-packages"] if shared else []), str(venv)],
                       check=True, env=env)
        python = venv / "bin" / "python"
        installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                    *(["--no-deps"] if shared else []), str(source)],
                                   env=env, cwd=work, capture_output=True, text=True)
        if installed.returncode == 0:
            break
        if shared:
            raise SystemExit(f"pip could not install the package: {installed.stderr[-1500:]}")
        print("startup_bench: no package index, so the venv shares this Python's site-packages",
              file=sys.stderr)
    where = subprocess.run([str(python), "-c", "import factflow_storage; print(factflow_storage.__file__)"],
                           check=True, env=env, cwd=work, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(venv)):
        raise SystemExit(f"the venv imports factflow_storage from {where}, not from its own install")
    return venv / "bin", shared


def _zipapp() -> ModuleType:
    """``build_zipapp.py`` of this checkout (imported late: it is not a package module)."""
    sys.path.insert(0, str(REPO))
    import build_zipapp

    return build_zipapp


def build_pyz(work: Path) -> Path:
    return _zipapp().build(work / "dist" / "factflow.pyz", quiet=True)


def rows(only: set[str] | None = None, quick: bool = False, repeat: int = REPEAT) -> list[Row]:
    ids = wanted(ROWS, only)
    if not ids:
        return []
    repeat = max(repeat, 3 if quick else REPEAT)
    work = Path(tempfile.mkdtemp(prefix="factflow-startup-bench-"))
    result = []
    try:
        venv = make_venv(work) if {"help-installed", "list-pyz"} & set(ids) else None
        pyz = build_pyz(work) if {"help-pyz", "list-pyz"} & set(ids) else None
        if "help-installed" in ids and venv:
            bin_dir, shared = venv
            env = _plain_env()
            help_argv, pass_argv = [str(bin_dir / "factflow"), "--help"], [str(bin_dir / "python"), "-c", "pass"]
            timed(help_argv, env)  # compiles the bytecode
            ours, theirs = alternate(repeat, lambda: timed(help_argv, env), lambda: timed(pass_argv, env))
            result.append(Row("help-installed", "`factflow --help`, installed (not editable)"
                              + (", dependencies from the system site-packages" if shared else ""),
                              "`python -c pass`, same venv", ours, theirs, "<=", 2.5, runs=repeat))
        if "help-pyz" in ids and pyz:
            env = _plain_env(SHIV_ROOT=str(work / "shiv-root"), HOME=str(work))
            help_argv, pass_argv = [sys.executable, str(pyz), "--help"], [sys.executable, "-c", "pass"]
            timed(help_argv, env)  # unpacks into SHIV_ROOT
            ours, theirs = alternate(repeat, lambda: timed(help_argv, env), lambda: timed(pass_argv, env))
            result.append(Row("help-pyz", "`python3 factflow.pyz --help`, warm", "`python3 -c pass`",
                              ours, theirs, "<=", 3.0, runs=repeat))
        if "list-pyz" in ids and venv and pyz:
            result.append(_list_pyz_row(work, venv[0], pyz, repeat))
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _list_pyz_row(work: Path, bin_dir: Path, pyz: Path, repeat: int) -> Row:
    env = _plain_env(SHIV_ROOT=str(work / "shiv-root-nobytecode"), HOME=str(work), PYTHONDONTWRITEBYTECODE="1",
                     FACTFLOW_STORAGE_URI=f"file://{work / 'store'}")
    installed = [str(bin_dir / "factflow"), "storage", "list"]
    zipped = [str(bin_dir / "python"), str(pyz), "storage", "list"]
    timed([str(bin_dir / "factflow"), "demo", "--execution", "bench-1"], env)
    timed(zipped, env)  # unpacks into its SHIV_ROOT under PYTHONDONTWRITEBYTECODE=1
    ours, theirs = alternate(repeat, lambda: timed(zipped, env), lambda: timed(installed, env))
    return Row("list-pyz", "`python3 factflow.pyz storage list`, 16 objects, PYTHONDONTWRITEBYTECODE=1",
               "installed `factflow storage list`, same", ours, theirs, "<=", 1.25, runs=repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--only", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    args = parser.parse_args()
    print_rows(rows(set(args.only.split(",")), repeat=args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())

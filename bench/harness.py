"""What every benchmark script shares: timing a child process, running factflow and its
reference alternately, and the row of the performance table each script reports.

Runs alternate (factflow, reference, factflow, reference, ...) so that a burst of load
from the rest of the machine falls on both sides instead of on one; the figures are
medians. Compare ratios from one run, never seconds across runs.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

FACTFLOW = [sys.executable, "-m", "factflow_storage"]
REPEAT = 3


@dataclass
class Row:
    """One line of the table: a median for factflow and one for its reference."""

    id: str
    work: str
    reference: str
    factflow: float
    reference_value: float | None
    # "<=" when lower is better (time), ">=" when higher is (throughput).
    op: str
    limit: float
    unit: str = "s"
    runs: int = REPEAT
    # What the target applies to: the ratio, or factflow's figure alone (no reference).
    on_ratio: bool = True

    @property
    def ratio(self) -> float | None:
        if self.reference_value is None or not self.reference_value:
            return None
        return self.factflow / self.reference_value

    @property
    def target(self) -> str:
        if self.on_ratio:
            return f"{self.op} {self.limit:g}x"
        return f"{self.op} {_figure(self.limit, self.unit)}"

    @property
    def met(self) -> bool | None:
        value = self.ratio if self.on_ratio else self.factflow
        if value is None:
            return None
        return value <= self.limit if self.op == "<=" else value >= self.limit


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:,.0f} {unit}"


# Not a user's default: unbuffered stdout makes a write per output line.
# PYTHONDONTWRITEBYTECODE stays as the machine sets it: hosts and containers that set it
# are what the pyz rows measure (a source checkout still reads the caches it has; compile
# them once before a run, ``python3 -m compileall -q factflow_storage``).
NOT_DEFAULT = ("PYTHONUNBUFFERED",)


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without the user's factflow settings or the Python settings a
    user does not have by default, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_") and k not in NOT_DEFAULT}
    env.update(extra)
    return env


def timed(argv: Sequence[str], env: dict[str, str], *, stdout=subprocess.DEVNULL,
          before: Callable[[], object] | None = None) -> float:
    """Wall seconds of one child; a failing child ends the benchmark with its stderr."""
    if before:
        before()
    started = time.perf_counter()
    done = subprocess.run(list(argv), env=env, stdout=stdout, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{shlex.join(argv)[:200]} exited {done.returncode}: "
                         f"{done.stderr.decode(errors='replace')[-1500:]}")
    return elapsed


def timed_shell(command: str, env: dict[str, str], before: Callable[[], object] | None = None) -> float:
    """Wall seconds of a shell pipeline (``pipefail``, so a failing first stage counts)."""
    return timed(["bash", "-o", "pipefail", "-c", command], env, before=before)


def alternate(repeat: int, factflow: Callable[[], float], reference: Callable[[], float],
              ) -> tuple[float, float]:
    """Medians of ``repeat`` runs of each, taken in turn."""
    ours, theirs = [], []
    for _ in range(max(repeat, 1)):
        ours.append(factflow())
        theirs.append(reference())
    return statistics.median(ours), statistics.median(theirs)


def wanted(ids: Iterable[str], only: set[str] | None) -> list[str]:
    return [row_id for row_id in ids if only is None or row_id in only]


def table(rows: list[Row], *, title: str = "factflow performance") -> str:
    """A markdown table of the rows, headed by the date and the machine."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"{title}, {stamp}, {platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()})",
             "",
             "| id | work | reference | factflow | reference | ratio | target | met |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}x"
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        cells = [row.id, row.work, row.reference, _figure(row.factflow, row.unit),
                 _figure(row.reference_value, row.unit), ratio, row.target, met]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines.append("")
    lines.append(f"medians of {min((r.runs for r in rows), default=REPEAT)}+ alternating runs; "
                 "ratio = factflow / reference (for time, below 1 is faster)")
    return "\n".join(lines)


def print_rows(rows: list[Row]) -> None:
    print(table(rows), flush=True)

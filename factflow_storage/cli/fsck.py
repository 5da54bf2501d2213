"""``factflow storage fsck [PREFIX] [--repair] [--verify] [--accept-changed]``: what crashed
writers left, and its repair."""

from __future__ import annotations

import sys

import click

from factflow_storage.cli.options import App, Duration, output_option, pass_app
from factflow_storage.cli.render import JSON, emit_json, emit_lines


@click.command("fsck", epilog="""\b
Examples:
  factflow storage fsck --repair --grace 10m
  factflow storage fsck --verify --repair executions/run-42/
  factflow storage fsck --verify --accept-changed executions/run-42/a.txt""")
@click.argument("prefix", default="")
@click.option("--repair", is_flag=True, help="Fix what is found (default: only report).")
@click.option("--grace", type=Duration(), default=None, metavar="DURATION",
              help="Leave alone what is younger than this (default 1h): a live write may still need it.")
@click.option("--verify", is_flag=True,
              help="Also read every object and check its bytes against its checksum (reads all the data); "
                   "with --repair, objects whose bytes changed are quarantined (reads refuse them).")
@click.option("--accept-changed", is_flag=True,
              help="Keep the new bytes of objects under PREFIX whose bytes changed: their sha256 becomes the "
                   "checksum, the old one kept as stale_checksum, and a quarantine ends (implies --verify).")
@output_option
@pass_app
def command(app: App, prefix: str, repair: bool, grace: float | None, verify: bool, accept_changed: bool,
            output: str | None) -> None:
    """Check the store under PREFIX: orphan temp files, sidecars that do not describe their
    bytes, companion records nobody references, stale multipart uploads. Exits 1 when it
    found something it did not repair."""
    from factflow_storage.keys import validate_prefix
    from factflow_storage.operations.catalog import FSCK

    report = app.service.call(FSCK, validate_prefix(prefix), repair=repair, grace=grace, verify=verify,
                              accept_changed=accept_changed)
    if app.fmt(output) == JSON:
        emit_json(report)
    else:
        lines = [f"{'repaired' if f['repaired'] else 'found'} {f['kind']} {f['path']}: {f['detail']}"
                 for f in report["findings"]]
        found = sum(report["found"].values())
        lines.append(f"{found} found, {sum(report['repaired'].values())} repaired, "
                     f"{report['unrepaired']} not repaired, {report['bytes_reclaimed']} bytes reclaimed")
        emit_lines(lines)
    if report["unrepaired"]:
        sys.stdout.flush()
        sys.exit(1)

"""Examples at the end of each command's help, kept in one table so commands that
other modules define get theirs without touching those modules. A command that carries
its own epilog keeps it."""

from __future__ import annotations

import click

KEY = "executions/demo-1/markdown_processor/chunker/msg-0001.json"

EXAMPLES: dict[str, list[str]] = {
    "storage metadata": [f"factflow storage metadata {KEY}", f"factflow storage metadata {KEY} -o json | jq .lineage"],
    "storage put": ["factflow storage put notes/readme.txt --file README.txt",
                    "echo '{\"a\": 1}' | factflow storage put notes/a.json --metadata '{\"adapter\": \"manual\"}'"],
    "storage delete": ["factflow storage delete notes/readme.txt"],
    "storage watch": ["factflow storage watch --execution demo-1",
                      "factflow storage watch --execution demo-1 --stage chunker --timeout 10m -o json"],
    "storage download": ["factflow storage download demo-1 --output-dir ./out/",
                         "factflow --api http://127.0.0.1:8080 storage download demo-1 -d ./out/ --stage chunker"],
    "execution show": ["factflow execution show demo-1", "factflow execution show demo-1 -o json"],
    "execution list": ["factflow execution list", "factflow execution list -o json | jq -r '.executions[].execution_id'"],
    "execution wait": ["factflow execution wait demo-1 --timeout 30m && echo done"],
    "config show": ["factflow config show", "factflow --api http://127.0.0.1:8080 config show"],
    "demo": ["factflow demo", "factflow --storage file:///tmp/factflow-demo demo --execution demo-1"],
    "serve": ["factflow serve --port 8080", "FACTFLOW_API_TOKEN=secret factflow serve --host 0.0.0.0 --storage minio://artefacts"],
}


def install(group: click.Group, path: tuple[str, ...] = ()) -> None:
    for name, sub in group.commands.items():
        here = (*path, name)
        if isinstance(sub, click.Group):
            install(sub, here)
        elif not sub.epilog and " ".join(here) in EXAMPLES:
            sub.epilog = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[" ".join(here)])

"""`directory_setup.py` / `paulow setup`: create the drop folders (idempotent)."""

from __future__ import annotations

from pathlib import Path

from ..workspace import Workspace


def run(args, echo=print) -> int:
    ws = Workspace(Path(args.root))
    created = ws.setup()
    for folder in ws.folders():
        state = "created" if folder in created else "exists "
        echo(f"{state} {folder.relative_to(ws.root)}")
    echo(f"workspace ready in {ws.root}")
    return 0

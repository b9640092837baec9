"""`make demo` / `paulow demo`: the whole loop on synthetic data in a temporary workspace.

Set up the folders, train a small model (time-boxed), segment new synthetic images, score them
against their exact masks, and print the Dice and where everything went. Uses the real entry points.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from .cli import main as cli_main
from .errors import PaulowError


def _step(title: str, argv: list[str]) -> None:
    print(f"\n=== {title}: paulow {' '.join(argv)}", flush=True)
    code = cli_main(argv)
    if code != 0:
        raise PaulowError(f"demo step '{title}' failed with exit code {code} (see the message above)")


def run(args=None, echo=print) -> int:
    """Run the demo; keep the workspace in `args.keep` when given, else in a temporary folder."""
    from .synthetic import write_dataset
    from .workspace import Workspace

    minutes = getattr(args, "minutes", 2.0) if args else 2.0
    keep = getattr(args, "keep", None) if args else None
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="paulow_demo_"))
    if keep and root.exists() and any(root.iterdir()):
        raise PaulowError(f"demo folder '{root}' is not empty: choose a new folder for --keep")
    start = time.monotonic()
    ws = Workspace(root)
    _step("1. set up the drop folders", ["setup", "--root", str(root)])
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=10, size=(192, 192), seed=1)
    truth = root / "demo_truth"
    write_dataset(
        ws.use_inputs,
        truth,
        kind="nuclei",
        n=4,
        size=(256, 256),
        seed=2,
        image_name="new{i}.tif",
        mask_name="new{i}_truth.tif",
    )
    echo(f"wrote 10 synthetic training images to {ws.train_images} and 4 new images to {ws.use_inputs}")
    _step(
        "2. train",
        [
            "train",
            "--root",
            str(root),
            "--name",
            "demo",
            "--yes",
            "--folds",
            "1",
            "--width",
            "16",
            "--epochs",
            "30",
            "--time-limit",
            str(minutes),
        ],
    )
    _step(
        "3. segment new images",
        ["predict", "--root", str(root), "--model", "demo", "--yes", "--overlay", "--instances"],
    )
    out = root / "evaluation"
    _step(
        "4. score against the exact masks",
        ["evaluate", "--pred", str(ws.use_outputs), "--truth", str(truth), "--out", str(out)],
    )
    pooled = json.loads((out / "metrics.json").read_text())
    dice = next(iter(pooled.values()))["pooled"]["dice"]
    echo(f"\nDEMO DONE in {time.monotonic() - start:.0f} s: pooled Dice on 4 new images = {dice:.3f}")
    echo(f"  model + training report: {ws.models}")
    echo(f"  masks, overlays, object tables: {ws.use_outputs}")
    echo(f"  evaluation: {out}")
    if not keep:
        echo(f"  (temporary workspace {root}; delete it when done: rm -r {root})")
    return 0


if __name__ == "__main__":
    import sys

    try:
        sys.exit(run())
    except PaulowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

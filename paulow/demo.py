"""`make demo` / `paulow demo`: the whole loop on synthetic data in a temporary workspace.

Set up the folders, train a small model (time-boxed), segment new synthetic images, score them
against their exact masks, and print the Dice and where everything went. Uses the real entry points:
`paulow.cli` passes its `main` in (`cli_main`), so this module imports no front end.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import PaulowError

TRAIN_OPTIONS = ("--folds", "1", "--width", "16", "--epochs", "30")  # a small model, one split


def _step(cli_main: Callable[[Sequence[str]], int], title: str, argv: list[str]) -> None:
    print(f"\n=== {title}: paulow {' '.join(argv)}", flush=True)
    code = cli_main(argv)
    if code != 0:
        raise PaulowError(f"demo step '{title}' failed with exit code {code} (see the message above)")


def _write_data(ws, truth: Path) -> None:
    """10 synthetic training images with masks; 4 new images to segment, their masks in `truth`."""
    from .api import write_synthetic_dataset

    write_synthetic_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=10, size=(192, 192), seed=1)
    write_synthetic_dataset(
        ws.use_inputs,
        truth,
        kind="nuclei",
        n=4,
        size=(256, 256),
        seed=2,
        image_name="new{i}.tif",
        mask_name="new{i}_truth.tif",
    )


def run(args=None, echo=print, *, cli_main: Callable[[Sequence[str]], int]) -> int:
    """Run the demo, each step through `cli_main` (`paulow.cli.main`); keep the workspace in `args.keep`
    when given, else in a temporary folder."""
    from .workspace import Workspace

    minutes = getattr(args, "minutes", 2.0) if args else 2.0
    keep = getattr(args, "keep", None) if args else None
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="paulow_demo_"))
    if keep and root.exists() and any(root.iterdir()):
        raise PaulowError(f"demo folder '{root}' is not empty: choose a new folder for --keep")
    start = time.monotonic()
    ws = Workspace(root)
    _step(cli_main, "1. set up the drop folders", ["setup", "--root", str(root)])
    truth = root / "demo_truth"
    _write_data(ws, truth)
    echo(f"wrote 10 synthetic training images to {ws.train_images} and 4 new images to {ws.use_inputs}")
    _step(
        cli_main,
        "2. train",
        [
            "train",
            "--root",
            str(root),
            "--name",
            "demo",
            "--yes",
            *TRAIN_OPTIONS,
            "--time-limit",
            str(minutes),
        ],
    )
    _step(
        cli_main,
        "3. segment new images",
        ["predict", "--root", str(root), "--model", "demo", "--yes", "--overlay", "--instances"],
    )
    out = root / "evaluation"
    _step(
        cli_main,
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


if __name__ == "__main__":  # the demo runs through the command line: `python -m paulow demo`
    import sys

    sys.exit("run the demo with `python -m paulow demo` (or `make demo`)")

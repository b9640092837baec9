"""Watching a fold while it trains: its curves PNG redrawn (at most every `CURVES_EVERY` seconds, and
at the end) and, optionally, TensorBoard event files (the `tensorboard` extra).

TensorBoard scalars, one point per epoch: `loss/train`, `loss/validation`, `dice/validation` (and
`dice/validation_<class>` for every per-class `val_dice_<class>` of the history row), `lr`, and
`regime_share/empty|small|large` (the dynamic loss's share of patches per regime).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError
from .report import REGIMES, plot_curves

CURVES_EVERY = 30.0  # seconds between two redraws of the curves PNG while training runs
TENSORBOARD_HINT = "pip install paulow[tensorboard]"


def tensorboard_writer_class():
    """`torch.utils.tensorboard.SummaryWriter`; a `UsageError` naming the extra when it is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError(
            f"--tensorboard needs the tensorboard package: {TENSORBOARD_HINT} (or leave out --tensorboard)"
        ) from None
    return SummaryWriter


def epoch_scalars(row: dict) -> dict[str, float]:
    """TensorBoard tag -> value for one history row (values the epoch does not have are left out)."""
    names = {
        "train_loss": "loss/train",
        "val_loss": "loss/validation",
        "val_dice": "dice/validation",
        "lr": "lr",
    }
    names.update(
        {key: f"dice/validation_{key[len('val_dice_') :]}" for key in row if key.startswith("val_dice_")}
    )
    scalars = {tag: float(row[key]) for key, tag in names.items() if row.get(key) is not None}
    counts = [float(row.get(key) or 0) for key, _ in REGIMES]
    if sum(counts) > 0:  # only the dynamic loss records regimes
        for (key, _), count in zip(REGIMES, counts):
            scalars[f"regime_share/{key[len('regime_') :]}"] = count / sum(counts)
    return scalars


class FoldWatch:
    """Redraws `curves` (a PNG, or None) from the history after an epoch when `every` seconds (default
    `CURVES_EVERY`) have passed since the last drawing (the first epoch always draws), and at `close`;
    writes each new epoch's scalars to TensorBoard under `tensorboard` (a folder, or None)."""

    def __init__(
        self,
        curves: Path | None,
        title: str = "",
        tensorboard: Path | None = None,
        every: float | None = None,
    ) -> None:
        self.curves, self.title = curves, title
        self.every = CURVES_EVERY if every is None else every
        self.last_drawn = float("-inf")
        self.writer = tensorboard_writer_class()(log_dir=str(tensorboard)) if tensorboard else None

    def epoch(self, history: Sequence[dict]) -> None:
        """After an epoch: its scalars to TensorBoard, the curves when they are due."""
        if self.writer is not None and history:
            row = history[-1]
            for tag, value in epoch_scalars(row).items():
                self.writer.add_scalar(tag, value, global_step=int(row["epoch"]))
            self.writer.flush()  # an interrupted run keeps what it wrote
        if time.monotonic() - self.last_drawn >= self.every:
            self.draw(history)

    def draw(self, history: Sequence[dict]) -> None:
        """The curves PNG now (nothing without a path or a history)."""
        if self.curves is not None and history:
            self.curves.parent.mkdir(parents=True, exist_ok=True)
            plot_curves(history, self.curves, title=self.title)
            self.last_drawn = time.monotonic()

    def close(self, history: Sequence[dict]) -> None:
        """At the end of the fold: the final curves; the event file closed."""
        self.draw(history)
        if self.writer is not None:
            self.writer.close()
            self.writer = None

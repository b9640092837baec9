"""Progress for notebook and script users of the API: the run's lines above a `tqdm.auto` bar of
epochs (a widget in Jupyter, text in a terminal). `verbose=False` in the API turns both off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line)


class EpochBar:
    """An `on_epoch` callback drawing one bar over every planned epoch of every fold (the plan may
    shrink as the run re-plans); it chains to the user's callback and closes with `close()`."""

    def __init__(self, desc: str, then: Callable[[dict], None] | None = None) -> None:
        self.desc, self.then = desc, then
        self.bar: Any = None  # a tqdm.auto bar, made at the first epoch (its total is known then)

    def open(self) -> EpochBar:
        """Start the bar (and its clock) before the run's first epoch; its total comes with it."""
        from tqdm.auto import tqdm

        self.bar = tqdm(total=None, desc=self.desc, unit="epoch", disable=False)
        return self

    def __call__(self, row: dict) -> None:
        total = int(row.get("folds") or 1) * int(row.get("epochs") or 1)
        done = (int(row.get("fold", 1)) - 1) * int(row.get("epochs") or 1) + int(row.get("epoch", 0))
        if self.bar is None:
            self.open()
        self.bar.total = total
        self.bar.n = min(done, total)
        if row.get("val_dice") is not None:
            self.bar.set_postfix(val_dice=f"{row['val_dice']:.3f}", refresh=False)
        self.bar.refresh()
        if self.then is not None:
            self.then(row)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress(
    verbose: bool, echo: Callable[[str], None] | None, on_epoch: Callable[[dict], None] | None, desc: str
) -> tuple[Callable[[str], Any], Callable[[dict], None] | None, EpochBar | None]:
    """(echo, on_epoch, bar) for a run: with `verbose`, lines go to `echo` (default: above the bar)
    and a bar follows the epochs; without, only the caller's own `echo` and `on_epoch` are called."""
    if not verbose:
        return echo or (lambda _: None), on_epoch, None
    bar = EpochBar(desc, on_epoch).open()
    return echo or _write, bar, bar

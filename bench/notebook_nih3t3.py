"""The notebook API on real data: a quickly trained tiny boundary model on NIH3T3 nuclei crops, then
`Model.predict` on a list of whole 1024 x 1344 images and `paulow.evaluate(pred, truth)` against
their 0/255 masks (docs/notebooks.md quotes this script's output).

    python bench/notebook_nih3t3.py [--minutes 3] [--root ../shared/data]
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import DEFAULT_ROOT
from machine import machine_line

import paulow
from paulow.api import image_pairs, read_image, read_mask


def run(root: Path, minutes: float, train_n: int = 6, test_n: int = 2, crop: int = 512) -> dict:
    """Train on `crop` x `crop` centre crops of `train_n` images (boundary target forced), then
    score `test_n` other whole images."""
    folder = root / "nih3t3_nuclei"
    pairs = image_pairs(folder / "images", folder / "masks")
    names = [image.name for image, _ in pairs]
    images = [read_image(image)[0, 0] for image, _ in pairs]  # (H, W) uint8
    masks = [read_mask(mask)[0] for _, mask in pairs]  # (H, W) 0/255
    y, x = (images[0].shape[0] - crop) // 2, (images[0].shape[1] - crop) // 2
    cut = (slice(y, y + crop), slice(x, x + crop))
    model = paulow.train(
        [i[cut] for i in images[:train_n]],
        [m[cut] for m in masks[:train_n]],
        time_limit=minutes,
        boundary_target=2,
        width=8,
        folds=1,
        test_fraction=0.0,
        patch=128,
        seed=0,
        verbose=False,
    )
    preds = model.predict(images[-test_n:], verbose=False)  # a list in, a list out
    scores = [paulow.evaluate(p, t) for p, t in zip(preds, masks[-test_n:])]  # 0/255 truth
    return {"model": repr(model), "images": names[-test_n:], "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args()
    out = run(args.root, args.minutes)
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M} {machine_line()}")
    print(out["model"])
    for name, s in zip(out["images"], out["scores"]):
        print(
            f"{name}: object Dice {s['dice']:.3f}, object F1 {s['object_f1']:.3f}, class mean Dice "
            f"{s['class_mean_dice']:.3f} (interior {s['class_dice_interior']:.3f}, boundary "
            f"{s['class_dice_boundary']:.3f})"
        )


if __name__ == "__main__":
    main()

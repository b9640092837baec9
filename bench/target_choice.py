"""Which training target the default run chooses for each benchmark dataset, and why.

    python bench/target_choice.py [--datasets ...] [--data-root ../shared/data]
                                  [--out bench/results/target_choice.json]

For each binary dataset's training split (the pages `bench/user_path.py` writes into
TRAINING_MASKS): the share of object pixels more than `DEFAULT_WIDTH` px inside an object
(`paulow.boundaries.interior_share`) and the target `boundary_target="auto"` settles to (boundary at
`AUTO_INTERIOR_SHARE` or more, else binary), the same function `train_model.py` calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from user_path import SYNTHETIC, real_split, synthetic_split  # noqa: E402

from paulow.boundaries import AUTO_INTERIOR_SHARE, DEFAULT_WIDTH, interior_share  # noqa: E402
from paulow.slices import Slice  # noqa: E402

BINARY = [
    "isbi2012_em_cells",
    "paulow_filaments",
    "nih3t3_nuclei",
    "vnc_mitochondria",
    "synthetic_large",
    "synthetic_small",
]


def choice(masks: list[np.ndarray]) -> dict:
    """The interior share of the masks (0 / non-zero) and the target it picks."""
    slices = [
        Slice(np.zeros((1, *m.shape), np.float32), (np.asarray(m) != 0).astype(np.uint8), Path("m"), i)
        for i, m in enumerate(masks)
    ]
    share = interior_share(slices, DEFAULT_WIDTH)
    return {
        "interior_share": round(share, 4),
        "target": "boundary" if share >= AUTO_INTERIOR_SHARE else "binary",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=BINARY, choices=BINARY)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/results/target_choice.json"))
    args = parser.parse_args(argv)
    rows = {}
    for name in args.datasets:
        train, _ = synthetic_split(name) if name in SYNTHETIC else real_split(name, args.data_root)
        rows[name] = choice([mask for _, mask in train])
        print(
            f"{name}: {rows[name]['interior_share']:.1%} of the object pixels inside -> {rows[name]['target']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "python bench/target_choice.py " + " ".join(argv or sys.argv[1:]),
                "threshold": AUTO_INTERIOR_SHARE,
                "ring_px": DEFAULT_WIDTH,
                "datasets": rows,
            },
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

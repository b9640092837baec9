"""bench/object_threshold.py: the three object-mask rules it compares, by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_the_three_rules_differ_where_they_should():
    from object_threshold import object_masks

    # P(background) per column 0.9, 0.6, 0.4 (argmax background: interior 0.35), 0.2, 0.05
    prob = np.array(
        [[[0.9, 0.6, 0.4, 0.2, 0.05]], [[0.05, 0.3, 0.35, 0.7, 0.9]], [[0.05, 0.1, 0.25, 0.1, 0.05]]],
        dtype=np.float32,
    )
    masks = object_masks(prob, threshold=0.7, min_size=0)
    assert masks["tuned"].tolist() == [[0, 0, 0, 1, 1]]
    assert masks["half"].tolist() == [[0, 0, 1, 1, 1]]
    assert masks["argmax"].tolist() == [[0, 0, 0, 1, 1]]
    small = object_masks(prob, threshold=0.5, min_size=3)  # the 3-px object stays, nothing smaller
    assert small["half"].tolist() == [[0, 0, 1, 1, 1]] and small["argmax"].sum() == 0

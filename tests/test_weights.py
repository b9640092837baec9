"""Ronneberger's border weight map on hand-built masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from paulow.errors import UsageError
from paulow.weights import border_weight_map, parse_border_weight


def test_two_objects_one_row_hand_computed():
    mask = np.array([[1, 0, 0, 0, 0, 0, 1]], dtype=np.uint8)  # two objects 6 px apart
    w = border_weight_map(mask, w0=10, sigma=5)
    # class balance: 2 foreground px of 7 -> 0.5 / (2/7) = 1.75; background 0.5 / (5/7) = 0.7
    assert w[0, 0] == pytest.approx(1.75) and w[0, 6] == pytest.approx(1.75)
    for x in range(1, 6):  # d1 = distance to the nearer object, d2 to the other one: d1 + d2 = 6
        assert w[0, x] == pytest.approx(0.7 + 10 * math.exp(-36 / 50), rel=1e-6)


def test_border_term_is_larger_in_narrow_gaps():
    mask = np.zeros((5, 12), dtype=np.uint8)
    mask[:, 0:4] = 1
    mask[:, 5:7] = 2  # a label image: 1 px from the first object
    mask[:, 10:12] = 3
    w = border_weight_map(mask)
    assert w[2, 4] > w[2, 8]  # the 1-px gap weighs more than the 3-px gap
    # the 1-px gap pixel: d1 = d2 = 1 -> 10 * exp(-4 / 50) on top of the background balance
    background = 0.5 / (4 * 5 / 60)
    assert w[2, 4] == pytest.approx(background + 10 * math.exp(-4 / 50), rel=1e-5)


def test_one_object_or_none_has_no_border_term():
    one = np.zeros((4, 4), dtype=np.uint8)
    one[1:3, 1:3] = 255  # binary 0/255: one connected component
    w = border_weight_map(one)
    assert np.unique(w).tolist() == pytest.approx([0.5 / (12 / 16), 0.5 / (4 / 16)])
    assert np.all(border_weight_map(np.zeros((3, 3), np.uint8)) == 1.0)


def test_binary_mask_is_split_into_components():
    mask = np.array([[255, 0, 255]], dtype=np.uint8)
    w = border_weight_map(mask, w0=10, sigma=5)
    assert w[0, 1] == pytest.approx(0.5 / (1 / 3) + 10 * math.exp(-4 / 50))


@pytest.mark.parametrize(
    "text, expected", [(None, None), ("", (10.0, 5.0)), ("3", (3.0, 5.0)), ("3,2", (3.0, 2.0))]
)
def test_parse_border_weight(text, expected):
    assert parse_border_weight(text) == expected


def test_bad_border_weight_is_a_usage_error():
    with pytest.raises(UsageError, match="W0,SIGMA"):
        parse_border_weight("10,0")

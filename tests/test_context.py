"""--context N (2.5-D): neighbouring sections as channels, mirrored at the ends, in training and in
the prediction path; a context model refuses a single 2-D image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paulow.api import Model
from paulow.context import add_context, context_channels, reflected_indices
from paulow.errors import ModelError, ShapeMismatchError, UsageError
from paulow.slices import Slice


def test_reflected_indices_mirror_without_repeating_the_edge():
    assert reflected_indices(4, 2).tolist() == [
        [2, 1, 0, 1, 2],
        [1, 0, 1, 2, 3],
        [0, 1, 2, 3, 2],
        [1, 2, 3, 2, 1],
    ]
    assert reflected_indices(2, 2).tolist() == [[0, 1, 0, 1, 0], [1, 0, 1, 0, 1]]


def test_context_channels_shape_and_order_neighbour_major():
    sections = np.stack(
        [np.full((2, 3, 4), p * 10, np.float32) + np.arange(2)[:, None, None] for p in range(3)]
    )  # section p, channel c = 10 p + c
    wide = context_channels(sections, 1)
    assert wide.shape == (3, 6, 3, 4)
    assert wide[:, :, 0, 0].tolist() == [
        [10, 11, 0, 1, 10, 11],
        [0, 1, 10, 11, 20, 21],
        [10, 11, 20, 21, 10, 11],
    ]
    assert context_channels(sections, 0) is sections


def _slices(name: str, pages: int) -> list[Slice]:
    return [
        Slice(np.full((1, 4, 4), p, np.float32), np.zeros((4, 4), np.uint8), Path(name), p)
        for p in range(pages)
    ]


def test_add_context_per_file_and_refuses_single_images():
    slices = add_context(_slices("a.tif", 3) + _slices("b.tif", 2), 1)
    assert [s.image[:, 0, 0].tolist() for s in slices] == [
        [1, 0, 1],
        [0, 1, 2],
        [1, 2, 1],
        [1, 0, 1],
        [0, 1, 0],
    ]
    with pytest.raises(ShapeMismatchError) as info:
        add_context(_slices("c.tif", 3) + _slices("single.png", 1), 1)
    assert str(info.value) == (
        "'single.png' is a single 2-D image but --context 1 feeds sections z-1..z+1 of a "
        "stack as channels: give stacks or volumes of at least 2 sections (or train "
        "without --context)"
    )
    with pytest.raises(UsageError, match="--context -1"):
        add_context(_slices("a.tif", 3), -1)


class PreviousMinusNext(torch.nn.Module):
    """Logit = 10 * (channel 0 - channel 2): section z-1 minus section z+1 of a context-1 input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * (x[:, :1] - x[:, 2:3])


def test_prediction_path_feeds_mirrored_neighbours_and_refuses_a_2d_image():
    meta = {
        "arch": "test",
        "in_channels": 3,
        "context": 1,
        "normalisation": {"method": "scale255"},
        "threshold": 0.5,
        "patch": 16,
    }
    model = Model([PreviousMinusNext()], meta)
    stack = np.stack([np.full((1, 16, 16), 51 * p, np.uint8) for p in range(3)])  # 0, 0.2, 0.4 after scaling
    probs = [p.probabilities[0, 5, 5] for p in model.predict_stack(stack, tile=16)]
    expected = torch.sigmoid(torch.tensor([0.0, 10 * (0.0 - 0.4), 0.0])).tolist()  # ends: z-1 == z+1
    assert probs == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ModelError) as info:
        model.predict(np.zeros((16, 16), np.uint8))
    assert str(info.value) == (
        "'array1 read as YX (pass axes= if not)' is a single 2-D image but the model was trained with --context 1 "
        "(sections z-1..z+1 of a stack as channels): segment a stack or volume of at "
        "least 2 sections, or use a model trained without --context"
    )


def test_train_command_slices_carry_the_window_and_the_context(tmp_path):
    from _volumes import affine, write_nii

    from paulow.api import folder_slices
    from paulow.cli import build_parser
    from paulow.commands.common import config_from_args
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    hu = np.stack([np.full((4, 6), v, np.int16) for v in (-1000, 40, 240)], axis=-1)  # (i, j, k): 3 sections
    write_nii(ws.train_images / "ct.nii.gz", hu, affine())
    write_nii(ws.train_masks / "ct_mask.nii.gz", (hu > 0).astype(np.uint8), affine())
    args = build_parser(tmp_path).parse_args(["train", "--window", "ct-soft-tissue", "--context", "1"])
    cfg = config_from_args(args, "cpu")
    assert (cfg.window, cfg.context) == ([-160.0, 240.0], 1)
    slices = folder_slices(ws.train_images, ws.train_masks, cfg, None, [])
    # section values after the window: 0, 0.5, 1; channels z-1, z, z+1, mirrored at both ends
    assert [s.image[:, 0, 0].tolist() for s in slices] == [[0.5, 0.0, 0.5], [0.0, 0.5, 1.0], [0.5, 1.0, 0.5]]

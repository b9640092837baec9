"""The chunked engine equals the whole-image path; objects keep one label across chunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from paulow.chunk_stitch import global_mapping, local_components, relabel
from paulow.chunking import AxisPlan, ChunkGrid, predict_in_chunks
from paulow.errors import UsageError
from paulow.infer import predict_slice


def times_two(channels: int = 1) -> nn.Module:
    """Logits = 2 x input, pixel by pixel."""
    net = nn.Conv2d(channels, 1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(2.0 / channels)
    return net


def tiny_net(channels: int = 1, classes: int = 1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, classes, 3, padding=1))


def noise(channels: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((channels, height, width), dtype=np.float32)


def test_axis_plan_reads_the_tiles_touching_a_core():
    plan = AxisPlan(100, 32, 16)  # ceil(68 / 16) + 1 = 6 tiles, evenly spread, the last flush
    assert plan.starts == [0, 14, 27, 41, 54, 68]
    read, pads, starts, offset = plan.region((40, 60))
    assert read == (14, 86) and pads == (0, 0)  # tiles 14..54 touch 40..59; the last ends at 86
    assert starts == [0, 13, 27, 40] and offset == 26


def test_axis_shorter_than_a_tile_is_padded_like_the_whole_image():
    plan = AxisPlan(5, 8, 4)  # padded to 8: 1 before, 2 after (centred, as infer._pad_to_tile)
    assert plan.region((0, 5)) == ((0, 5), (1, 2), [0], 1)


@pytest.mark.parametrize(
    "shape,chunk", [((1, 37), 32), ((65, 129), 33), ((64, 64), 32), ((97, 40), 40), ((33, 33), 32)]
)
def test_pointwise_times_two_is_exact_for_awkward_sizes(shape, chunk):
    image = noise(1, *shape)
    chunked = predict_in_chunks(times_two(), image, tile=32, overlap=0.5, chunk=chunk)
    whole = predict_slice(times_two(), image, tile=32, overlap=0.5, device="cpu")
    assert chunked.shape == (1, *shape)
    assert np.array_equal(chunked, whole)
    np.testing.assert_allclose(
        chunked[0], 1 / (1 + np.exp(-2 * image[0])), rtol=0, atol=1e-6
    )  # the blend of equal values, in float32


@pytest.mark.parametrize(
    "shape,chunk,overlap", [((70, 91), 32, 0.5), ((129, 64), 48, 0.25), ((31, 100), 40, 0.5)]
)
def test_tiny_network_chunked_equals_whole_image(shape, chunk, overlap):
    net = tiny_net(channels=2, classes=2)
    image = noise(2, *shape, seed=3)
    chunked = predict_in_chunks(net, image, tile=32, overlap=overlap, chunk=chunk, batch_size=3)
    whole = predict_slice(net, image, tile=32, overlap=overlap, device="cpu")
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
    assert np.array_equal(chunked.argmax(0), whole.argmax(0))


def test_a_chunk_smaller_than_a_tile_is_refused():
    with pytest.raises(UsageError, match=r"--chunk 16 is smaller than the tile \(32 px\): give at least 32"):
        predict_in_chunks(times_two(), noise(1, 64, 64), tile=32, overlap=0.5, chunk=16)


def chunked_labels(mask: np.ndarray, chunk: int, min_size: int = 0) -> np.ndarray:
    """The stitch path over a mask in memory."""
    grid = ChunkGrid(*mask.shape, chunk)
    local, records = {}, {}
    for index in grid.indices():
        local[index], records[index] = local_components(mask[grid.core(*index)])
    offsets, mapping = global_mapping(records, min_size)
    out = np.zeros(mask.shape, dtype=np.uint32)
    for index in grid.indices():
        out[grid.core(*index)] = relabel(local[index], offsets[index], records[index].count, mapping)
    return out


def touching_objects() -> np.ndarray:
    """Objects across seams and corners of a 10 px chunk grid, diagonal contacts included."""
    mask = np.zeros((30, 30), dtype=np.uint8)
    mask[8:12, 2:5] = 1  # across the horizontal seam at y = 10
    mask[2:5, 8:13] = 1  # across the vertical seam at x = 10
    mask[9, 9] = mask[10, 10] = 1  # diagonal contact exactly at the corner (10, 10)
    mask[19, 20] = mask[20, 19] = 1  # anti-diagonal contact at the corner (20, 20)
    mask[15:26, 15] = 1  # a line through two chunks
    mask[25, 15:28] = 1  # ... turning at the corner region into a third
    mask[0, 29] = mask[29, 0] = 1  # single pixels in corner chunks
    mask[14, 24] = mask[15, 25] = 1  # diagonal inside one chunk
    return mask


def test_touching_objects_across_borders_and_corners_match_whole_image_labels():
    mask = touching_objects()
    expected, count = ndimage.label(mask, structure=np.ones((3, 3)))
    got = chunked_labels(mask, 10)
    assert got.max() == count == 8
    pairs = {(int(a), int(b)) for a, b in zip(expected[mask > 0], got[mask > 0])}
    assert len(pairs) == count and len({a for a, _ in pairs}) == len({b for _, b in pairs}) == count
    assert np.array_equal(got > 0, mask > 0)


def test_global_ids_are_deterministic_raster_order_of_chunks():
    got = chunked_labels(touching_objects(), 10)
    # chunk (0, 0) in raster order: the block at rows 2-4 (1), at rows 8-11 (2), the corner pair (3);
    # chunk (0, 1) holds nothing new; chunk (0, 2): the pixel (0, 29) (4)
    assert [got[2, 8], got[8, 2], got[9, 9], got[10, 10], got[0, 29]] == [1, 2, 3, 3, 4]
    assert got[19, 20] == got[20, 19] != 0  # anti-diagonal contact across the corner (20, 20)
    assert np.array_equal(got, chunked_labels(touching_objects(), 10))


def test_small_objects_are_dropped_by_their_whole_area_across_chunks():
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[9:11, 9:11] = 1  # 4 px split over four chunks (1 px each)
    mask[0, 0:3] = 1  # 3 px in one chunk
    got = chunked_labels(mask, 10, min_size=4)
    assert got.max() == 1 and np.array_equal(got > 0, np.pad(np.ones((2, 2)), 9) > 0)


def test_empty_chunks_stay_empty_and_cost_no_table():
    offsets, mapping = global_mapping(
        {(0, 0): local_components(np.zeros((8, 8)))[1], (0, 1): local_components(np.zeros((8, 8)))[1]}
    )
    assert offsets == {(0, 0): 0, (0, 1): 0} and mapping.size == 0


WHOLE_OUTLINE_COLUMNS = {
    "perimeter_px",
    "solidity",
    "eccentricity",
    "major_axis_px",
    "minor_axis_px",
    "integrated_intensity",
}


def test_object_rows_merged_from_chunk_parts_equal_the_whole_image_table():
    from paulow.chunk_objects import merge_parts, object_parts
    from paulow.postprocess import object_table

    labels = chunked_labels(touching_objects(), 10)
    image = np.random.default_rng(1).integers(0, 1000, (2, 30, 30)).astype(np.uint16)
    grid = ChunkGrid(30, 30, 10)
    parts = [
        object_parts(
            labels[grid.core(*i)],
            image[(slice(None), *grid.core(*i))],
            grid.core(*i)[0].start,
            grid.core(*i)[1].start,
        )
        for i in grid.indices()
    ]
    rows = merge_parts(parts, int(labels.max()))
    expected = object_table(labels, image)
    assert [r["label"] for r in rows] == [r["label"] for r in expected] == list(range(1, 9))
    for got, want in zip(rows, expected):
        # the shape measurements need the whole outline at once: whole-image tables only
        assert set(got) == set(want) - WHOLE_OUTLINE_COLUMNS
        for key, value in got.items():
            assert value == pytest.approx(want[key], rel=1e-12), key

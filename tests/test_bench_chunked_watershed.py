"""bench/chunked_watershed.py: its confluent field is one mask component of touching discs, and a
small run gives the whole image's labels."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_a_small_confluent_field_is_one_component_and_chunked_labels_equal_the_whole_image():
    sys.path.insert(0, str(BENCH))
    import chunked_watershed

    row = chunked_watershed.one_size(120, 50, 6)
    assert row["mask_components"] == 1 and row["objects"] == 121  # 11 x 11 discs of radius 6 (13 px across)
    assert row["halo"] == 14 and row["equal"] and row["warning"] is None
    assert row["one_chunk_window_px"] == 78 * 78  # the central chunk (1, 1): 50 px + 14 px each side

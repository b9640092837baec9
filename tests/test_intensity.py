"""--window / CT presets: parsing, the mapping to 0..1, and the spec a model records and applies."""

from __future__ import annotations

import numpy as np
import pytest

from paulow.config import config_from_options
from paulow.errors import UsageError
from paulow.intensity import CT_PRESETS, normalisation_spec, parse_window
from paulow.normalisation import apply_window, normalise_with


def test_parse_window_text_preset_and_numbers():
    assert parse_window("-160,240") == [-160.0, 240.0]
    assert parse_window("CT-Bone") == [-450.0, 1050.0]
    assert parse_window([0, 80]) == [0.0, 80.0]
    assert parse_window(None) is None
    assert CT_PRESETS["ct-lung"] == (-1350.0, 150.0)


@pytest.mark.parametrize("text", ["240,-160", "5", "a,b", "1,2,3"])
def test_parse_window_refuses_bad_values(text):
    with pytest.raises(UsageError, match=r"--window"):
        parse_window(text)


def test_apply_window_maps_low_high_to_0_1_and_clips():
    hu = np.array([[[-1000.0, -160.0, 40.0, 240.0, 3000.0, np.nan]]])
    np.testing.assert_allclose(apply_window(hu, -160, 240)[0, 0], [0.0, 0.0, 0.5, 1.0, 1.0, 0.0])
    spec = {"method": "window", "low": -160.0, "high": 240.0}
    np.testing.assert_array_equal(normalise_with(hu, spec), apply_window(hu, -160, 240))


def test_config_records_the_window_spec():
    cfg = config_from_options({"window": "ct-soft-tissue"}, "cpu", "cpu")
    assert cfg.window == [-160.0, 240.0]
    assert normalisation_spec(cfg) == {"method": "window", "low": -160.0, "high": 240.0}
    plain = config_from_options({}, "cpu", "cpu")
    assert plain.window is None and normalisation_spec(plain) == {
        "method": "percentile",
        "low": 1.0,
        "high": 99.8,
    }

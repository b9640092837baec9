"""The device probe (`paulow.device_probe`, its search `paulow.probe_search`): its choice from given
timings and out-of-memory errors, the compile decision, the cache and the user's overrides."""

from __future__ import annotations

import json

import pytest
import torch

from paulow import device_probe as dp
from paulow import probe_search as ps
from paulow.errors import UsageError

OOM = "out of memory"
# seconds per batch for (tile, batch); OOM: the device runs out of memory
TIMINGS = {
    (128, 4): 0.01,
    (128, 8): 0.016,
    (128, 16): 0.031,
    (128, 32): 0.05,
    (256, 4): 0.025,
    (256, 8): OOM,
    (512, 4): OOM,
}


class FakeTimer:
    """Replays TIMINGS and records the calls."""

    def __init__(self, timings=None, compiled=(30.0, 0.01)) -> None:
        self.timings = timings or TIMINGS
        self.calls: list[tuple[int, int]] = []
        self.compiled_calls = 0
        self.compiled_result = compiled
        self.compiled_members = None

    def __call__(self, tile: int, batch: int) -> float:
        self.calls.append((tile, batch))
        seconds = self.timings[(tile, batch)]
        if seconds == OOM:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return seconds

    def compiled(self, tile: int, batch: int) -> tuple[float, float]:
        self.compiled_calls += 1
        return self.compiled_result


def test_pixels_per_tile_is_the_square_of_the_grid_step():
    assert ps.pixels_per_tile(128, 0.5) == 64**2
    assert ps.pixels_per_tile(256, 0.0) == 256**2
    assert ps.pixels_per_tile(100, 0.25) == 75**2


def test_search_keeps_the_fastest_and_backs_off_on_out_of_memory():
    timer = FakeTimer()
    choice = ps.search(timer, [128, 256, 512], [4, 8, 16, 32], overlap=0.5)
    # by hand, MPix/s = step² x batch / s / 1e6 with step 64 (tile 128) and 128 (tile 256):
    # 128/4 1.6384; 128/8 2.048 (>= 1.05 x 1.6384: kept); 128/16 2.1140 (< 1.05 x 2.048: stop);
    # 256/4 2.62144 (>= 1.05 x 2.048: kept); 256/8 out of memory (back off to 4);
    # 512/4 out of memory: no batch fits, the search ends
    assert (choice.tile, choice.batch_size) == (256, 4)
    assert choice.mpix_per_s == pytest.approx(2.62144)
    assert timer.calls == [(128, 4), (128, 8), (128, 16), (256, 4), (256, 8), (512, 4)]
    assert [t[:2] for t in choice.tried] == [list(c) for c in timer.calls]
    assert [t[2] for t in choice.tried][-2:] == [None, None]
    assert choice.complete
    assert choice.reason.startswith("tile 256, batch 4: 2.62 MPix/s, the fastest measured")
    assert "256/8 out of memory" in choice.reason


def test_a_larger_tile_that_is_not_faster_ends_the_search():
    timings = {(128, 4): 0.01, (128, 8): 0.03, (256, 4): 0.039, (256, 8): 0.1, (512, 4): 1.0}
    timer = FakeTimer(timings)
    choice = ps.search(timer, [128, 256, 512], [4, 8], overlap=0.5)
    # 128/4 1.6384; 128/8 1.0923 (slower: stop); 256/4 1.6804; 256/8 1.3107 (slower: stop);
    # tile 256's best 1.6804 < 1.05 x 1.6384 = 1.7203: stop, keep 128/4
    assert (choice.tile, choice.batch_size) == (128, 4)
    assert timer.calls == [(128, 4), (128, 8), (256, 4), (256, 8)]


def test_out_of_memory_on_the_smallest_candidate_is_a_clear_error():
    with pytest.raises(UsageError) as err:
        ps.search(FakeTimer({(128, 4): OOM}), [128], [4, 8], overlap=0.5)
    assert str(err.value) == (
        "the device ran out of memory even for tile 128 and batch 4: give a smaller "
        "--tile and --batch-size, or use --device cpu"
    )


def test_other_errors_are_not_taken_for_out_of_memory():
    def broken(tile: int, batch: int) -> float:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        ps.search(broken, [128], [4], overlap=0.5)


def test_the_time_budget_stops_the_search_after_the_first_candidate():
    ticks = iter(range(100))
    timer = FakeTimer()
    choice = ps.search(
        timer, [128, 256], [4, 8, 16], overlap=0.5, budget_s=0.5, clock=lambda: float(next(ticks))
    )
    assert timer.calls == [(128, 4)] and (choice.tile, choice.batch_size) == (128, 4)
    assert not choice.complete


@pytest.mark.parametrize(
    "work_mpix,compiled_s,expected",
    [
        (2000.0, 0.01, None),  # 2000 / 1.6384 = 1221 s >= 1200 s: timed; 4096x4/0.01 = 1.6384: not 5 % faster
        (2000.0, 0.009, True),  # 1.8204 MPix/s >= 1.05 x 1.6384
        (1000.0, 0.001, False),  # 610 s: too short to time compiling at all
    ],
)
def test_compile_is_timed_only_for_long_runs_and_kept_when_faster(work_mpix, compiled_s, expected):
    timer = FakeTimer(compiled=(40.0, compiled_s))
    choice = ps.Choice(128, 4, mpix_per_s=1.6384)
    choice = ps.decide_compile(choice, work_mpix, 0.5, timer.compiled)
    assert timer.compiled_calls == (0 if expected is False else 1)
    assert choice.compile is bool(expected)
    if expected is False:
        assert choice.reason == "; not compiled: the run takes about 610 s, compiling pays off from 1200 s"


@pytest.fixture
def candidates(monkeypatch):
    """The candidates of TIMINGS on the CPU device (the cache key names this CPU)."""
    monkeypatch.setattr(dp, "candidate_tiles", lambda patch, kind, side: [128, 256, 512])
    monkeypatch.setattr(dp, "CPU_BATCHES", (4, 8, 16, 32))


def _meta():
    return {
        "arch": "paulow_attention_unet",
        "arch_args": {"width": 32, "depth": 4},
        "in_channels": 1,
        "patch": 128,
    }


def test_probe_measures_once_then_uses_the_cache(tmp_path, monkeypatch, candidates):
    monkeypatch.setenv("PAULOW_CACHE_DIR", str(tmp_path / "cache"))
    timer = FakeTimer()
    device = torch.device("cpu")
    first, members = dp.probe(["net"], _meta(), device, 1000.0, overlap=0.5, largest_side=2048, timer=timer)
    assert (first.tile, first.batch_size) == (256, 4) and members == ["net"]
    assert timer.calls[0] == (128, 8) and len(timer.calls) == 7  # the estimate, then the search
    cached = json.loads((tmp_path / "cache" / "probe_cache.json").read_text())
    assert len(cached) == 1 and next(iter(cached.values()))["tile"] == 256
    timer.calls.clear()
    second, _ = dp.probe(["net"], _meta(), device, 1000.0, overlap=0.5, largest_side=2048, timer=timer)
    assert timer.calls == [] and (second.tile, second.batch_size) == (256, 4)
    assert second.reason.startswith("cached for this device and network")
    other_width = {**_meta(), "arch_args": {"width": 64, "depth": 4}}
    dp.probe(["net"], other_width, device, 1000.0, overlap=0.5, largest_side=2048, timer=timer)
    assert timer.calls  # another width: measured again


def test_candidate_tiles_follow_the_patch_and_the_image_size():
    assert dp.candidate_tiles(128, "cuda", 4096) == [128, 256, 512]
    assert dp.candidate_tiles(100, "cuda", 4096) == [128, 256, 512]
    assert dp.candidate_tiles(128, "cuda", 300) == [128, 256]
    assert dp.candidate_tiles(128, "cpu", 4096) == [256, 384, 512]
    assert dp.candidate_tiles(128, "cpu", 100) == [256]


def test_given_tile_and_batch_are_kept_and_one_given_value_is_searched_around(
    tmp_path, monkeypatch, candidates
):
    monkeypatch.setenv("PAULOW_CACHE_DIR", str(tmp_path))
    timer = FakeTimer()
    choice, _ = dp.probe(
        ["net"],
        _meta(),
        torch.device("cpu"),
        1000.0,
        overlap=0.5,
        largest_side=2048,
        tile=96,
        batch_size=3,
        timer=timer,
    )
    assert (choice.tile, choice.batch_size, choice.reason) == (96, 3, "given by --tile and --batch-size")
    assert timer.calls == []
    choice, _ = dp.probe(
        ["net"], _meta(), torch.device("cpu"), 1000.0, overlap=0.5, largest_side=2048, tile=128, timer=timer
    )
    assert choice.tile == 128 and choice.batch_size == 8  # 128/16 is not 5 % faster than 128/8
    assert set(t for t, _ in timer.calls) == {128}
    assert not (tmp_path / "probe_cache.json").exists()  # a partly given choice is not cached


def test_a_short_run_is_not_probed_and_not_cached(tmp_path, monkeypatch, candidates):
    monkeypatch.setenv("PAULOW_CACHE_DIR", str(tmp_path))
    timer = FakeTimer()
    # the defaults (the first tile, batch 8): 10 MPix at 2.048 MPix/s, about 5 s; 3 % of it is under 1 s
    choice, _ = dp.probe(
        ["net"], _meta(), torch.device("cpu"), 10.0, overlap=0.5, largest_side=2048, timer=timer
    )
    assert (choice.tile, choice.batch_size) == (128, 8) and timer.calls == [(128, 8)]
    assert choice.reason.startswith("the run is short (about 5 s): tile 128, batch 8 without probing")
    assert not (tmp_path / "probe_cache.json").exists()


def test_the_real_timer_times_a_tiny_network_on_the_cpu():
    from paulow.models import build_model

    net = build_model("paulow_attention_unet", in_channels=1, classes=1, width=4, depth=2)
    seconds = dp.TileTimer([net], 1, torch.device("cpu"))(32, 2)
    assert 0 < seconds < 5


def _options(**kw):
    from paulow.api import SegmentOptions

    return SegmentOptions(device="cpu", **kw)


def _one_image(folder):
    import numpy as np

    from paulow import io

    folder.mkdir()
    return [io.write_tiff(folder / "a.tif", np.zeros((2, 300, 200), dtype=np.uint8))]


def test_segment_options_are_left_alone_on_the_cpu_by_default(tmp_path):
    said = []
    opts = _options(tile=None)
    tuned, members = dp.tune_options(opts, ["net"], _meta(), _one_image(tmp_path / "in"), None, said.append)
    assert tuned is opts and members == ["net"] and said == []


def test_segment_options_take_the_probe_choice_and_say_why(tmp_path, monkeypatch, candidates):
    monkeypatch.setattr(dp, "PROBE_ON_CPU", True)
    monkeypatch.setenv("PAULOW_CACHE_DIR", str(tmp_path / "cache"))
    timer = FakeTimer()
    monkeypatch.setattr(dp, "TileTimer", lambda *args: timer)
    monkeypatch.setattr(dp, "PROBE_SHARE", 1000.0)  # 2 x 300 x 200 px is a short run: probe anyway
    said = []
    tuned, _ = dp.tune_options(_options(), ["net"], _meta(), _one_image(tmp_path / "in"), None, said.append)
    assert (tuned.tile, tuned.batch_size) == (256, 4)
    assert said[0].startswith("device settings: tile 256, batch 4: 2.62 MPix/s, the fastest measured")
    tuned, _ = dp.tune_options(_options(), ["net"], _meta(), _one_image(tmp_path / "in2"), 8, said.append)
    assert (tuned.tile, tuned.batch_size) == (128, 8)  # --batch-size kept; 256/8 ran out of memory


def test_an_unreadable_first_image_does_not_stop_the_run(tmp_path, monkeypatch, candidates):
    monkeypatch.setattr(dp, "PROBE_ON_CPU", True)
    monkeypatch.setenv("PAULOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dp, "TileTimer", lambda *args: FakeTimer())
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    said = []
    tuned, _ = dp.tune_options(_options(), ["net"], _meta(), [tmp_path / "bad.tif"], None, said.append)
    assert tuned == _options() and said == []

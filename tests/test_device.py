"""CPU threads follow the load other processes put on the cores."""

from __future__ import annotations

import subprocess
import sys

import pytest

from paulow.device import StartupLoad, choose_wait_policy, cpu_threads, others_busy_cores


@pytest.fixture(autouse=True)
def no_thread_setting(monkeypatch):
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "cores, busy, threads",
    [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.8, 1), (2, 3.0, 1), (16, 3.4, 13), (1, 5.0, 1)],
)
def test_threads_are_the_cores_others_leave(cores, busy, threads):
    assert cpu_threads(cores, busy) == threads


def test_a_thread_count_the_user_set_is_obeyed(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads(2, 1.8) == 3


def test_sleeping_waits_keep_every_core(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert cpu_threads(2, 1.8) == 2


def test_a_busy_machine_at_start_gets_the_passive_wait_policy():
    import os

    assert choose_wait_policy(busy=0.3, torch_loaded=False) == StartupLoad(None, 0.3)
    assert "OMP_WAIT_POLICY" not in os.environ
    assert choose_wait_policy(busy=1.0, torch_loaded=True) == StartupLoad(None, None)  # too late to sample
    assert "OMP_WAIT_POLICY" not in os.environ
    assert choose_wait_policy(busy=1.0, torch_loaded=False) == StartupLoad("PASSIVE", 1.0)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_a_wait_policy_the_user_set_is_kept(monkeypatch):
    import os

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert choose_wait_policy(busy=1.0, torch_loaded=False).policy is None
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_a_spinning_process_is_seen_as_a_busy_core():
    if others_busy_cores(0.05) is None:
        pytest.skip("no /proc/stat on this system: the load cannot be sampled")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = others_busy_cores(1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy >= 0.7


def test_choosing_the_device_and_threads_sets_no_threads(monkeypatch):
    """Importing `paulow.device` and every choice in it return their answer; only `use_threads`, which
    the entry of a run calls once, changes torch's threads (to what `cpu_threads` returned)."""
    import importlib

    import torch

    import paulow.device

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        device = importlib.reload(paulow.device)
        assert device.pick_device("cpu") == "cpu"
        assert device.cpu_threads(2, 1.8) == 1 and device.cpu_threads(busy=0.0) == device.usable_cores()
        assert device.choose_wait_policy(busy=1.0, torch_loaded=True) == device.StartupLoad()
        assert device.fewer_threads("cuda") is None
        assert torch.get_num_threads() == 3
        assert device.use_threads("cuda", 0.0) is None and torch.get_num_threads() == 3
        assert device.use_threads("cpu", 0.0) == device.usable_cores() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_the_command_line_hands_the_startup_load_to_the_command(monkeypatch, tmp_path):
    """`paulow train` applies the threads once, at its start, for the load sampled before torch
    loaded (passed, not kept in a global); the load is no option of the run's report."""
    import argparse

    import torch

    import paulow.device
    from paulow.cli import main
    from paulow.commands.common import effective_options

    seen = []
    monkeypatch.setattr(paulow.device, "choose_wait_policy", lambda: StartupLoad(None, 1.25))
    monkeypatch.setattr(paulow.device, "cpu_threads", lambda cores=None, busy=None: seen.append(busy) or 1)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(("set", n)))
    assert main(["train", "--root", str(tmp_path / "none"), "--device", "cpu"]) != 0  # no images there
    assert seen == [1.25, ("set", 1)]
    assert "busy_cores" not in effective_options(argparse.Namespace(busy_cores=1.25, epochs=3))

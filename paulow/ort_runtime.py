"""ONNX Runtime for CPU inference, on request (`--runtime onnxruntime`): the same network, exported once
per process, tile size and weights, run by onnxruntime. `bench/ort_speed.py` measured it side by side
with PyTorch on NIH3T3 (2-core CPU): 1.5x faster, but the masks are not byte-identical (about 200 of
1.4 M pixels differ per image, where PyTorch on 1 or 2 threads differs in 0-1), so PyTorch stays the
default and ONNX Runtime is an option for users who want the speed.

`with_runtime` swaps each network of an ensemble for an `OrtNetwork` with the same output, so the
sliding window, blending, TTA and post-processing stay the ones `paulow.infer` uses for PyTorch.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings
import weakref
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .errors import ModelError, UsageError

log = logging.getLogger("paulow")

RUNTIMES = ("torch", "onnxruntime")
OPSET = 18
# network -> {(tile, channels, weights version): OrtNetwork}; weak, so a network that goes away takes its sessions
_SESSIONS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, int, int], OrtNetwork]] = (
    weakref.WeakKeyDictionary()
)


class OrtNetwork(nn.Module):
    """A network's logits computed by an onnxruntime session (CPU, float32, fixed tile size)."""

    def __init__(self, session, activation: str, input_name: str, tile: int) -> None:
        super().__init__()
        self.session = session
        self.tile = tile
        self.input_name = input_name
        self.paulow_activation = activation  # read by paulow.inference_networks.activation_of

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        if tuple(tiles.shape[2:]) != (self.tile, self.tile):
            raise ModelError(
                f"this ONNX Runtime session was exported for {self.tile} px tiles, got "
                f"{tuple(tiles.shape[2:])} - predict with the tile size it was made for"
            )
        inputs = np.ascontiguousarray(tiles.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: inputs})[0])


def available() -> bool:
    """True when onnxruntime and onnx (for the export) are installed (the `export` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def choose_runtime(requested: str, device: torch.device | str) -> str:
    """The runtime a prediction uses, checked: "torch" (the default) or "onnxruntime" (CPU only)."""
    if requested not in RUNTIMES:
        raise UsageError(f"--runtime {requested!r}: choose one of {', '.join(RUNTIMES)}")
    if requested == "onnxruntime":
        if torch.device(device).type != "cpu":
            raise UsageError(
                "--runtime onnxruntime runs on the CPU only - use --device cpu or --runtime torch"
            )
        if not available():
            raise UsageError(
                "--runtime onnxruntime needs onnxruntime and onnx - pip install 'paulow[export]'"
            )
    return requested


def with_runtime(
    models: nn.Module | Sequence[nn.Module], runtime: str, tile: int, in_channels: int
) -> list[nn.Module]:
    """The ensemble's networks for `runtime`: unchanged for "torch"; ONNX Runtime sessions for
    "onnxruntime" (a network that cannot be exported stays on PyTorch, with a warning)."""
    members = [models] if isinstance(models, nn.Module) else list(models)
    if runtime == "torch":
        return members
    return [_session_for(member, int(tile), int(in_channels)) for member in members]


def _session_for(member: nn.Module, tile: int, channels: int) -> nn.Module:
    if hasattr(member, "_orig_mod"):  # torch.compile'd: the user chose PyTorch's compiler
        return member
    cached = _SESSIONS.setdefault(member, {})
    key = (tile, channels, _weights_version(member))
    if key not in cached:
        cached.clear()  # sessions of earlier weights (a network trained further in this process)
        try:
            cached[key] = _export(member, tile, channels)
        except Exception as err:  # noqa: BLE001 - any exporter failure means: keep PyTorch
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            log.warning(
                "ONNX Runtime: the network could not be exported (%s); predicting with PyTorch", first
            )
            return member
    return cached[key]


def _weights_version(member: nn.Module) -> int:
    """Changes whenever a parameter or buffer is modified in place or replaced (training steps,
    `load_state_dict`), so a session never outlives the weights it was exported from."""
    tensors = list(member.parameters()) + list(member.buffers())
    return hash(tuple((t.data_ptr(), t._version) for t in tensors))


def _export(member: nn.Module, tile: int, channels: int) -> OrtNetwork:
    """Trace the network at one tile size (dynamic batch) and open a CPU session on it."""
    import onnxruntime as ort

    from .inference_networks import activation_of

    was_training = member.training
    member.eval()
    example = torch.zeros(1, channels, tile, tile)
    buffer = io.BytesIO()
    try:
        # the tracer's notes on Python-level shape checks (fixed here: one tile size per session)
        # are for developers, not for someone segmenting images
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                member,
                (example,),
                buffer,  # type: ignore[arg-type]  # a BytesIO works; stubs say path only
                input_names=["tiles"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamo=False,
                dynamic_axes={"tiles": {0: "batch"}, "logits": {0: "batch"}},
            )
    finally:
        member.train(was_training)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    return OrtNetwork(session, activation_of(member), "tiles", tile)

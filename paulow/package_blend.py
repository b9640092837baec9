"""The toolkit's sliding-window blending as a TorchScript module, so that an exported package
predicts a whole image exactly as `use_model.py` does.

The network's output depends on the tile it sees (GroupNorm statistics are per tile), so a consumer
that cuts its own tiles gets other masks than the toolkit. `BlendedNet` takes a normalised image of
any size (at least half a tile on each side) and does what `paulow.infer.predict_slice` does:
- an axis shorter than the tile is reflect-padded (centred) up to the tile and cropped back;
- tile starts spread evenly from 0 to `length - tile` with at most `step` between them
  (`paulow.infer.tile_starts`: the same count and the same half-to-even rounding);
- each tile's probabilities weighted by the Gaussian window (`paulow.infer.gaussian_window_1d`),
  summed, divided by the sum of the weights.
The per-tile network is traced at the fixed tile size; the loops are scripted, so the module runs
on any image size (TorchScript: deepImageJ, bioimageio.core, QuPath's DJL).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# the foreground output: none (K >= 2 classes: the mask is the argmax), P (binary), 1 - P(background)
FOREGROUND_CODES = {"classes": 0, "binary": 1, "boundary": 2}


class BlendedNet(nn.Module):
    """Probabilities (and, for binary and boundary models, the foreground probability) of a whole
    normalised (N, C, H, W) image, blended from overlapping tiles as the toolkit does."""

    def __init__(self, tile_net: nn.Module, tile: int, step: int, window_1d: torch.Tensor, rule: str) -> None:
        super().__init__()
        self.tile_net = tile_net
        self.tile = int(tile)
        self.step = int(step)
        self.foreground = FOREGROUND_CODES[rule]
        self.register_buffer("window_1d", window_1d.float())
        self.register_buffer("window", torch.outer(window_1d.float(), window_1d.float()))

    def starts(self, length: int) -> list[int]:
        """`paulow.infer.tile_starts(length, tile, step)`."""
        if length <= self.tile:
            return [0]
        count = (length - self.tile + self.step - 1) // self.step + 1
        out: list[int] = []
        for i in range(count):
            at = torch.tensor(i * (length - self.tile) / (count - 1), dtype=torch.float64)
            out.append(int(torch.round(at).item()))  # half to even, as Python's round
        return out

    def weight_sum(self, length: int, starts: list[int]) -> torch.Tensor:
        window = self.window_1d
        assert isinstance(window, torch.Tensor)  # a buffer (for mypy; TorchScript knows it)
        total = torch.zeros(length, dtype=torch.float64, device=window.device)
        for start in starts:
            total[start : start + self.tile] += window.double()
        return total.float()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        height, width = x.shape[2], x.shape[3]
        pad_y, pad_x = max(self.tile - height, 0), max(self.tile - width, 0)
        if pad_y > 0 or pad_x > 0:
            x = F.pad(x, [pad_x // 2, pad_x - pad_x // 2, pad_y // 2, pad_y - pad_y // 2], mode="reflect")
        ys, xs = self.starts(x.shape[2]), self.starts(x.shape[3])
        batch, tile = x.shape[0], self.tile
        total = torch.zeros(0)
        for y in ys:
            row = torch.cat([x[:, :, y : y + tile, xx : xx + tile] for xx in xs], dim=0)
            probs = self.tile_net(row) * self.window
            if total.numel() == 0:
                total = torch.zeros(
                    batch, probs.shape[1], x.shape[2], x.shape[3], dtype=probs.dtype, device=x.device
                )
            for j, xx in enumerate(xs):
                total[:, :, y : y + tile, xx : xx + tile] += probs[j * batch : (j + 1) * batch]
        total = total / self.weight_sum(x.shape[2], ys).view(1, 1, -1, 1)
        total = total / self.weight_sum(x.shape[3], xs).view(1, 1, 1, -1)
        total = total[:, :, pad_y // 2 : pad_y // 2 + height, pad_x // 2 : pad_x // 2 + width]
        if self.foreground == 0:
            return [total]
        first = total[:, :1]
        return [total, 1.0 - first if self.foreground == 2 else first]


def blended_script(probability_net: nn.Module, in_channels: int, tile: int, overlap: float, rule: str):
    """`BlendedNet` of a `paulow.export.ProbabilityNet`, scripted (a `torch.jit.ScriptModule`)."""
    from .infer import gaussian_window_1d

    example = torch.rand(2, in_channels, tile, tile, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tile_net = torch.jit.trace(probability_net.eval(), example, check_trace=False)
    step = max(1, round(tile * (1 - overlap)))
    window = torch.from_numpy(gaussian_window_1d(tile))
    return torch.jit.script(BlendedNet(tile_net, tile, step, window, rule).eval())

"""Device choice: CUDA when present, else the CPU with all cores."""
from __future__ import annotations

import os


def pick_device(requested: str = "auto") -> str:
    """'cuda' when present (or requested), else 'cpu' with all cores."""
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        from .errors import UsageError
        raise UsageError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu")
    if requested == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    return requested

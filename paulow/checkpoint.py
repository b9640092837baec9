"""Save and load self-describing `.pth` model files.

A file holds `{"format": "paulow", "meta": {...plain types...}, "state_dicts": [ {...}, ... ]}`:
one state dict per model (several for a cross-validation ensemble). Loading uses
`torch.load(..., weights_only=True)`, so a file from the internet cannot run code, and the network is
rebuilt from the metadata alone. A bare state dict saved by the original PAULow code also loads.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError

FORMAT_VERSION = 1
log = logging.getLogger("paulow")


@dataclass
class LoadedModel:
    """Networks rebuilt from a model file, in eval mode, and the file's metadata."""

    models: list[Any]
    meta: dict
    legacy: bool = False
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def in_channels(self) -> int:
        return int(self.meta["in_channels"])

    @property
    def classes(self) -> int:
        return int(self.meta.get("classes", 1))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def base_meta() -> dict:
    """Versions and date that every model file records."""
    import numpy
    import torch

    from . import __version__

    return {
        "format_version": FORMAT_VERSION,
        "paulow_version": __version__,
        "torch_version": str(torch.__version__),
        "numpy_version": numpy.__version__,
        "python_version": platform.python_version(),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def plain(value: Any) -> Any:
    """Metadata as plain Python types (what `weights_only=True` accepts): no numpy, Path or tuple."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    for kind in (bool, int, float, str):  # subclasses (numpy floats, TorchVersion) become plain
        if isinstance(value, kind):
            return kind(value)
    if value is None:
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return str(value)


def save_checkpoint(path: Path, state_dicts: list[dict], meta: dict) -> Path:
    """Write the model file atomically, then reload it to verify; return the path."""
    from .io.atomic import atomic_write_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "paulow",
        "meta": plain({**base_meta(), **meta}),
        "state_dicts": [{k: v.detach().cpu() for k, v in sd.items()} for sd in state_dicts],
    }
    with atomic_write_path(path) as tmp:
        torch_save(payload, tmp, path)
        verify = load_checkpoint(tmp)
        if len(verify.models) != len(state_dicts):
            raise ModelError(f"model file '{path}' did not verify after writing: try again")
    return path


def torch_save(payload: Any, tmp: Path, final: Path) -> None:
    """`torch.save`, with a failed write (torch reports a full disk as a RuntimeError) as an OSError
    naming the file the user knows."""
    import errno
    import shutil

    import torch

    try:
        torch.save(payload, tmp)
    except RuntimeError as exc:  # "...failed writing file..." or, on a full disk, "unexpected pos N vs M"
        if "writ" not in str(exc) and "unexpected pos" not in str(exc):
            raise
        full = shutil.disk_usage(final.parent).free < (64 << 20)
        raise OSError(
            errno.ENOSPC if full else errno.EIO,
            "No space left on device" if full else f"write failed ({str(exc).splitlines()[0]})",
            str(final),
        ) from None


def _read(path: Path) -> Any:
    import torch

    if not path.is_file():
        raise ModelError(f"model file '{path}' not found: check the name in Use_Model/saved_models")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds; the user needs one message
        text = str(exc).strip()
        if "weights only load failed" in text.lower() or "weights_only" in text:
            # never pass on torch's advice to load with weights_only=False: that would run its code
            first = "it holds Python objects besides tensors and plain values, refused for safety"
        else:
            first = text.splitlines()[0] if text else type(exc).__name__
        raise ModelError(
            f"cannot load model file '{path}' safely ({first}): it is corrupt or not a PAULow/PyTorch "
            "state dict; retrain or re-download it"
        ) from None


def _build(meta: dict, state_dict: dict, path: Path) -> Any:
    from .models import build_model

    try:
        model = build_model(meta["arch"], **meta.get("arch_args", {}))
        model.load_state_dict(state_dict, strict=True)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(
            f"model file '{path}' does not match its architecture ({first}): "
            "it was written by an incompatible version; retrain it"
        ) from None
    return model.eval()


def _legacy_meta(state_dict: dict) -> dict:
    from .models import infer_original_args

    args = dict(infer_original_args(state_dict))
    arch = args.pop("name")
    return {
        "arch": arch,
        "arch_args": args,
        "in_channels": int(args.get("in_channels", 3)),
        "classes": int(args.get("classes", 1)),
        "normalisation": {"method": "scale255"},
        "threshold": 0.5,
        "patch": 128,
        "overlap": 0.5,
        "legacy": True,
    }


def validate_meta(payload: dict, path: Path) -> dict:
    """The metadata of a PAULow model file, checked deeply against the one schema
    (`paulow.model_file.ModelMeta`); a ModelError naming the file and the bad field otherwise."""
    from .model_file import FIX, ModelMeta

    record = ModelMeta.parse(payload.get("meta"), path)
    sds = payload.get("state_dicts")
    if not isinstance(sds, list) or not sds or not all(isinstance(sd, dict) for sd in sds):
        raise ModelError(
            f"model file '{path}': field 'state_dicts': not a non-empty list of network weights - {FIX}"
        )
    return record.meta


def load_checkpoint(path: Path, device: str = "cpu") -> LoadedModel:
    """Rebuild the networks a model file describes (eval mode, on `device`)."""
    path = Path(path)
    payload = _read(path)
    if isinstance(payload, dict) and payload.get("format") == "paulow":
        meta = validate_meta(payload, path)
        models = [_build(meta, sd, path).to(device) for sd in payload["state_dicts"]]
        from .inference_networks import set_activation

        set_activation(models, meta)  # softmax for the files that say so (K >= 2), however they are used
        return LoadedModel(models=models, meta=meta, path=path)
    if isinstance(payload, dict) and payload and all(hasattr(v, "shape") for v in payload.values()):
        from .model_file import check_legacy_state_dict

        check_legacy_state_dict(payload, path)
        try:
            meta = _legacy_meta(payload)
        except (KeyError, ValueError) as exc:
            raise ModelError(
                f"'{path}' is a bare state dict of an unknown network ({exc}): "
                "only PAULow files and the original PAULow AttentionUNet load"
            ) from None
        note = (
            f"'{path.name}' is a bare state dict from the original PAULow code: no metadata, so "
            f"the network ({meta['arch_args']}) was inferred from tensor shapes and images are "
            "scaled by 1/255 as the original did"
        )
        log.warning(note)
        model = _build(meta, payload, path).to(device)
        return LoadedModel(models=[model], meta=meta, legacy=True, path=path, warnings=[note])
    raise ModelError(f"'{path}' is not a PAULow model file: retrain it with train_model.py")


def describe(path: Path) -> dict:
    """One row for the model table: name, date, network, channels, classes, test Dice."""
    payload = _read(Path(path))
    row: dict[str, Any] = {"name": Path(path).stem}
    if isinstance(payload, dict) and payload.get("format") == "paulow":
        meta = validate_meta(payload, Path(path))
        row.update(
            date=str(meta.get("date", ""))[:16].replace("T", " "),
            network=f"{meta.get('arch')} w{meta.get('arch_args', {}).get('width', '?')}",
            channels=meta.get("in_channels"),
            classes=meta.get("classes", 1),
            test_dice=meta.get("metrics", {}).get("test_dice"),
            members=len(payload["state_dicts"]),
        )
        per_class = meta.get("metrics", {}).get("test_dice_per_class")
        if per_class:  # K >= 2: test_dice is the foreground-class mean; each foreground class beside it
            row["class_dice"] = ", ".join(
                f"{n} {d:.3f}" for n, d in list(per_class.items())[1:] if d is not None
            )
        objects = meta.get("metrics", {}).get("test_dice_objects")
        if isinstance(objects, (int, float)):  # a boundary model: its masks are its objects' Dice
            means = row["test_dice"]
            row["test_dice"] = objects
            row["class_dice"] = (
                f"class mean {means:.3f}" + (f" ({row['class_dice']})" if "class_dice" in row else "")
                if isinstance(means, (int, float))
                else row.get("class_dice", "")
            )
    else:
        row.update(
            date="",
            network="original PAULow (bare state dict)",
            channels="?",
            classes=1,
            test_dice=None,
            members=1,
        )
    return row


def read_meta(path: Path) -> dict:
    """A model file's metadata without building its networks (an original PAULow state dict: the
    metadata inferred from its tensor shapes); `ModelError` for anything else."""
    path = Path(path)
    payload = _read(path)
    if isinstance(payload, dict) and payload.get("format") == "paulow":
        return validate_meta(payload, path)
    if isinstance(payload, dict) and payload and all(hasattr(v, "shape") for v in payload.values()):
        try:
            return _legacy_meta(payload)
        except (KeyError, ValueError) as exc:
            raise ModelError(
                f"'{path}' is a bare state dict of an unknown network ({exc}): "
                "only PAULow files and the original PAULow AttentionUNet load"
            ) from None
    raise ModelError(f"'{path}' is not a PAULow model file: retrain it with train_model.py")

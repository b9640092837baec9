"""`paulow predict --input PATH [PATH ...] --output DIR`: segment named files and folders of any size
(chunked, on dask) without the drop folders; inputs are never cleared."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import PaulowError, UsageError
from ..workspace import Workspace
from .common import choose_model, list_models


def _inputs(paths: list[Path]) -> list[Path]:
    """Files as given; a folder: its OME-Zarr images when it is not one itself, then its images."""
    from ..io.listing import list_images
    from ..lazy import is_lazy_input

    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"--input '{path}': no such file or folder - check the path")
        if (
            path.is_dir()
            and path.suffix.lower() != ".zarr"
            and not (path / ".zattrs").exists()
            and not (path / "zarr.json").exists()
        ):
            found += sorted(
                p for p in path.iterdir() if p.is_dir() and is_lazy_input(p) and p.suffix.lower() == ".zarr"
            ) + list_images(path)
        else:
            found.append(path)
    if not found:
        raise UsageError(
            f"--input {' '.join(map(str, paths))}: no images there - give image files, "
            "OME-Zarr folders or folders holding them"
        )
    return found


def _model_path(args) -> Path:
    """`--model` as a .pth path or a saved model's name; without it the only saved model (else a prompt)."""
    if args.model and args.model.lower().endswith(".pth") and Path(args.model).is_file():
        return Path(args.model)
    models = Workspace(Path(args.root)).models
    saved = list_models(models)
    if not args.model and len(saved) == 1:
        return saved[0]
    return choose_model(models, args.model, args.yes)


def run(args, echo=print) -> int:
    """Segment every input with one cluster for the run; returns non-zero if any file failed."""
    from ..api import load_model
    from ..dask_runner import TaskRunner
    from ..device import pick_device, use_threads

    if not args.output:
        raise UsageError("--input needs --output DIR: the folder for the results")
    inputs = _inputs(list(args.input))
    device = pick_device(args.device or "auto")
    use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    model_path = _model_path(args)
    model = load_model(model_path, device)
    echo(f"model: {model_path.name}; {len(inputs)} input(s) -> {args.output}")
    failed = 0
    with TaskRunner(args.scheduler, device) as runner:  # one cluster for all the inputs
        for path in inputs:
            try:
                record = _one(model, path, args, runner, device, echo)
                echo(f"{path.name}: wrote {', '.join(Path(p).name for p in record['outputs'])}")
            except PaulowError as exc:  # messages name the file; the other inputs go on
                print(f"error: {exc}", file=sys.stderr, flush=True)
                failed += 1
    return 1 if failed else 0


def _one(model, path: Path, args, runner, device: str, echo) -> dict:
    from ..chunked_run import predict_file

    return predict_file(
        model,
        path,
        Path(args.output),
        chunk=args.chunk,
        fmt=args.format,
        runner=runner,
        threshold=args.threshold,
        min_size=args.min_size,
        tile=args.tile,
        overlap=args.overlap,
        halo=args.halo,
        batch_size=args.batch_size or 8,
        tta=args.tta,
        device=device,
        progress=True,
        echo=echo,
    )

"""`paulow predict --input PATH [PATH ...] --output DIR`: segment named files and folders of any size
(chunked, on dask) without the drop folders; inputs are never cleared."""

from __future__ import annotations

import sys
from pathlib import Path

from ..api import find_inputs, load_model, pick_device, predict_inputs, use_threads
from ..errors import UsageError
from ..workspace import Workspace
from .common import choose_model, list_models


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
    if not args.output:
        raise UsageError("--input needs --output DIR: the folder for the results")
    inputs = find_inputs(list(args.input))
    device = pick_device(args.device)
    use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    model_path = _model_path(args)
    model = load_model(model_path, device)
    echo(f"model: {model_path.name}; {len(inputs)} input(s) -> {args.output}")
    failed = 0
    results = predict_inputs(
        model,
        inputs,
        Path(args.output),
        scheduler=args.scheduler,
        device=device,
        progress=True,
        echo=echo,
        chunk=args.chunk,
        format=args.format,
        threshold=args.threshold,
        min_size=args.min_size,
        tile=args.tile,
        overlap=args.overlap,
        halo=args.halo,
        batch_size=args.batch_size or 8,
        tta=args.tta,
    )
    for result in results:  # one cluster for all the inputs
        if result.error is not None:  # messages name the file; the other inputs go on
            print(f"error: {result.error}", file=sys.stderr, flush=True)
            failed += 1
        else:
            echo(f"{result.path.name}: wrote {', '.join(p.name for p in result.outputs)}")
    return 1 if failed else 0

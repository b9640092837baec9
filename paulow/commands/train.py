"""`train_model.py` / `paulow train`: validate the training folders, train, save, report, clear."""

from __future__ import annotations

import logging
from pathlib import Path

from ..api import (
    TrainingInputs,
    TrainingRequest,
    name_training_run,
    read_training_inputs,
    run_files,
    settle_finished_runs,
    start_training,
    train_and_save,
    use_threads,
)
from ..workspace import Workspace
from .common import (
    add_file_log,
    ask_model_name,
    check_tensorboard,
    consume_inputs,
    effective_options,
    main_lock,
    quiet,
    remove_log,
    report_refused,
    require_writable,
    training_options,
)

log = logging.getLogger("paulow")


def request_from_args(args) -> TrainingRequest:
    """The run the options ask for."""
    palette, board = getattr(args, "palette", None), getattr(args, "tensorboard", None)
    return TrainingRequest(
        options=training_options(args),
        preset=getattr(args, "preset", None),
        palette=Path(palette) if palette else None,
        resume=getattr(args, "resume", None),
        overwrite=bool(args.overwrite),
        tensorboard=Path(board) if board else None,
        record=effective_options(args),
    )


def run(args, echo=print) -> Path | None:
    """The whole train command; returns the saved model path (None on torchrun's other ranks).

    Under torchrun (see `paulow.api.training_run`) rank 0 alone prompts, holds the workspace lock,
    validates, writes the model and the report and clears the inputs; the other ranks train their
    share of the patches and follow rank 0's decisions."""
    check_tensorboard(args)
    ws = Workspace(Path(args.root))
    request = request_from_args(args)
    device = start_training(args.device)
    use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    inputs = read_training_inputs(ws, request, device, echo, lambda: _prepare(ws, args, echo))
    if inputs.main:
        report_refused(inputs.refused, args, "Train_Model", echo)
    name = name_training_run(
        ws,
        request,
        inputs,
        lambda default: ask_model_name(args.name, ws.models, args.overwrite, args.yes, default),
        echo,
    )
    with main_lock(ws):
        if not inputs.main:
            train_and_save(ws, request, inputs, name, run_files(ws, inputs, name, request.overwrite), quiet)
            return None
        return _train_main(ws, request, inputs, name, args, echo)


def _prepare(ws: Workspace, args, echo) -> None:
    """Before reading (rank 0): the folders writable, the leftovers of finished runs tidied."""
    ws.models.mkdir(parents=True, exist_ok=True)
    require_writable(ws, ws.models, [ws.train_images, ws.train_masks], args.keep_inputs)
    settle_finished_runs(ws, echo)


def _train_main(
    ws: Workspace, request: TrainingRequest, inputs: TrainingInputs, name: str, args, echo
) -> Path:
    """Rank 0's run under the lock: train with a log file, say where it went, then clear the inputs."""
    files = run_files(ws, inputs, name, request.overwrite)
    handler = add_file_log(files.report_dir / "train.log")
    try:
        trained = train_and_save(ws, request, inputs, name, files, echo)
    except BaseException:
        if files.state.exists():
            echo(
                f"training stopped; nothing was deleted. To go on where it stopped: "
                f"train_model.py --resume {name}"
            )
        raise
    finally:
        remove_log(handler)
    assert trained is not None  # rank 0 gets its model
    echo(f"saved model: {trained.path}")
    echo(f"report: {trained.report_dir}")
    echo(trained.test_line)
    consume_inputs(inputs.read_as, args.keep_inputs, "Train_Model", echo)
    return trained.path


__all__ = ["run"]

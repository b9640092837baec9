"""The train command's run from its two drop folders: the stopped run it resumes, the pairs it reads,
its name, the cross-validated training and the saved, verified model with its report.

Under torchrun every rank calls these functions in the same order: rank 0 alone runs the
command's callbacks (folder checks, the name prompt), reads the stopped run, writes the model and
the report; its answers are broadcast, so the ranks stay in step, and the others train their share."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TrainConfig
from ..errors import UsageError
from ..workspace import Fingerprint, Workspace
from .training_inputs import fingerprinted, fit, folder_config, folder_slices
from .workspace_run import check_model_name, free_folder, read_input_fingerprints

if TYPE_CHECKING:
    from ..slices import Slice

Echo = Callable[[str], None]


@dataclass(frozen=True)
class TrainingRequest:
    """What a training run from the workspace's folders was asked for."""

    options: Mapping[str, Any]  # the training options given (see `given_training_options`)
    preset: str | None = None
    palette: Path | None = None  # else `palette.txt` beside the masks
    resume: str | bool | None = None  # the stopped run to continue (True: the only one)
    overwrite: bool = False
    tensorboard: Path | None = None  # TensorBoard event files go to `tensorboard/<name>`
    record: Mapping[str, Any] = field(default_factory=dict)  # written to the report as options.json


@dataclass(frozen=True)
class StoppedRun:
    """A stopped run `--resume` continues: its resume file's payload, settings and report folder."""

    payload: dict
    cfg: TrainConfig
    report_dir: Path


@dataclass(frozen=True)
class TrainingInputs:
    """What a run read: its settings and slices; on rank 0 (`main`) also the fingerprints of the
    files it read (to clear them), their hashes, the refused files and the stopped run resumed."""

    cfg: TrainConfig
    slices: list[Slice]
    device: str  # this rank's
    main: bool
    read_as: dict[Path, Fingerprint] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    refused: list = field(default_factory=list)
    resumed: StoppedRun | None = None


@dataclass(frozen=True)
class RunFiles:
    """Where a run writes its report (and, until it finishes, its resume state)."""

    report_dir: Path
    state: Path


@dataclass(frozen=True)
class TrainedModel:
    """A finished run: the saved, verified model file, its metadata and the report's test line."""

    path: Path
    meta: dict
    report_dir: Path
    test_line: str


def start_training(requested: str | None) -> str:
    """The run's device (`cuda:LOCAL_RANK` under torchrun), after joining torchrun's process group."""
    from .. import distributed
    from ..device import pick_device

    device = distributed.local_device(pick_device(requested or "auto"))
    distributed.init(device)
    return device


def settle_finished_runs(ws: Workspace, echo: Echo) -> None:
    """Tidy the states of runs killed after saving their model (only while no other run is going)."""
    from ..training import resume as resume_file

    try:
        with ws.lock():
            resume_file.settle_finished_runs(ws.models, echo)
    except UsageError:
        pass  # another run holds the workspace: its files are not ours to tidy


def read_training_inputs(
    ws: Workspace, request: TrainingRequest, device: str, echo: Echo, check: Callable[[], None]
) -> TrainingInputs:
    """The folders checked (`check` on rank 0: writable folders, settled runs), the stopped run
    read, the settings made and the pairs read; on rank 0 only the pairs whose files were
    fingerprinted before reading are kept (the others are refused, see `fingerprinted`)."""
    from .. import distributed
    from ..training.resume import input_hashes

    distributed.main_first(lambda: ws.require(ws.train_images, ws.train_masks))
    distributed.on_main(check)
    resumed = _stopped_on_main(ws, request.resume, device, echo)
    cfg = resumed.cfg if resumed else distributed.main_first(lambda: _config(ws, request, device))
    main = distributed.is_main()
    read_as = read_input_fingerprints([ws.train_images, ws.train_masks]) if main else {}  # before reading
    refused: list = []
    slices = distributed.main_first(
        lambda: folder_slices(ws.train_images, ws.train_masks, cfg, request.palette, refused)
    )
    if not main:
        return TrainingInputs(cfg, slices, device, False, resumed=resumed)
    slices = fingerprinted(slices, read_as, ws.train_masks, refused)
    files = sorted({s.source for s in slices} | {ws.train_masks / s.info["mask_file"] for s in slices})
    read_as = {f: read_as[f] for f in files}
    return TrainingInputs(
        cfg, slices, device, True, read_as, input_hashes(read_as, ws.root), refused, resumed
    )


def _stopped_on_main(ws: Workspace, wanted: str | bool | None, device: str, echo: Echo) -> StoppedRun | None:
    """The stopped run to resume (None for a new run), read on rank 0, on this rank's device."""
    from .. import distributed

    if not wanted:
        return None
    resumed = distributed.on_main(lambda: stopped_run(ws, wanted, device, echo))
    return replace(resumed, cfg=replace(resumed.cfg, device=device))


def _config(ws: Workspace, request: TrainingRequest, device: str) -> TrainConfig:
    return folder_config(ws.train_masks, request.options, request.preset, device, request.palette)


def stopped_run(ws: Workspace, resume: str | bool, device: str, echo: Echo) -> StoppedRun:
    """The stopped run `resume` names (True: the only one), with its own settings on `device`."""
    from ..training import resume as resume_file

    path = resume_file.find_state(ws.models, resume)
    payload = resume_file.load_state(path)
    known = set(TrainConfig.__dataclass_fields__)
    # a run saved before the tile subset existed validated whole images: its best Dice was measured so
    cfg = TrainConfig(
        **{"val_tiles": 0, **{k: v for k, v in payload["config"].items() if k in known}, "device": device}
    )
    state = payload["state"]
    echo(
        f"resuming '{payload['name']}' with its own settings: {len(state['folds'])} fold(s) finished, "
        f"{state['seconds'] / 60:.1f} min spent"
        + (
            f", fold {state['current']['fold'] + 1} after epoch {state['current']['epoch']}"
            if state.get("current")
            else ""
        )
    )
    return StoppedRun(payload, cfg, path.parent)


def name_training_run(
    ws: Workspace,
    request: TrainingRequest,
    inputs: TrainingInputs,
    ask_name: Callable[[str], str],
    echo: Echo,
) -> str:
    """The model's name, on rank 0 and broadcast: a resumed run's own (its inputs checked), else
    `ask_name(default)` (the command's `--name` or prompt) after pointing out resumable runs."""
    from .. import distributed

    def choose() -> str:
        if inputs.resumed:
            return _resumed_name(ws, inputs.resumed, inputs.hashes, request.overwrite)
        return _new_name(ws, request.overwrite, ask_name, echo)

    return distributed.on_main(choose)


def _new_name(ws: Workspace, overwrite: bool, ask_name: Callable[[str], str], echo: Echo) -> str:
    """The new model's name; the name of a stopped run is refused (unless `overwrite`: its state is
    then replaced)."""
    from ..training import resume as resume_file

    runs = resume_file.resumable_runs(ws.models)
    if runs:
        names = ", ".join(p.parent.name.rsplit("_report", 1)[0] for p in runs)
        echo(f"note: stopped run(s) {names} can be continued with --resume NAME; starting a new run")
    name = ask_name(f"model_{_dt.datetime.now():%Y%m%d_%H%M}")
    stopped = resume_file.stopped_run_named(ws.models, name)
    if stopped and not overwrite:
        raise UsageError(
            f"a stopped run named '{name}' can be continued with --resume {name}: do that, "
            "or choose another name (--overwrite discards the stopped run)"
        )
    if stopped:
        stopped.unlink(missing_ok=True)
        echo(f"--overwrite: discarded the stopped run '{name}'")
    return name


def _resumed_name(ws: Workspace, resumed: StoppedRun, hashes: dict[str, str], overwrite: bool) -> str:
    """The stopped run's name, once its inputs are checked and its model file name is still free."""
    from ..training import resume as resume_file

    resume_file.check_inputs(resumed.payload["inputs"], hashes)
    state = resumed.report_dir / resume_file.RESUME_FILE
    try:
        name = resumed.payload.get("name")
        if not isinstance(name, str):
            raise ValueError("it is not text")
        name = check_model_name(name, resumed.report_dir, overwrite=True)
    except ValueError as exc:
        raise UsageError(
            f"the resume file '{state}' names no valid model ({exc}): start a new run without --resume"
        ) from None
    if (ws.models / f"{name}.pth").exists() and not overwrite:
        raise UsageError(
            f"a model '{name}.pth' exists already in '{ws.models}': move it away, or add --overwrite to replace it"
        )
    return name


def run_files(ws: Workspace, inputs: TrainingInputs, name: str, overwrite: bool) -> RunFiles:
    """A resumed run's report folder, else `NAME_report` (`NAME_report_2`, ... unless `overwrite`)."""
    from ..training.resume import RESUME_FILE

    if inputs.resumed:
        folder = inputs.resumed.report_dir
    else:
        folder = ws.models / f"{name}_report"
        folder = folder if overwrite else free_folder(folder)
    return RunFiles(folder, folder / RESUME_FILE)


def train_and_save(
    ws: Workspace, request: TrainingRequest, inputs: TrainingInputs, name: str, files: RunFiles, echo: Echo
) -> TrainedModel | None:
    """Plan, cross-validate, save the verified model file and the report (rank 0; the resume state
    is kept until the model is saved); the other ranks train their share and get None."""
    resume = inputs.resumed.payload["state"] if inputs.resumed else None
    if not inputs.main:
        fit(inputs.slices, inputs.cfg, inputs.device, None, echo, request.options, resume=resume)
        return None
    return _train_on_main(ws, request, inputs, name, files, echo, resume)


def _train_on_main(
    ws: Workspace,
    request: TrainingRequest,
    inputs: TrainingInputs,
    name: str,
    files: RunFiles,
    echo: Echo,
    resume: dict | None,
) -> TrainedModel:
    from ..checkpoint import save_checkpoint
    from ..report import write_json
    from ..training import resume as resume_file
    from ..training.run import test_line
    from ..training.timing import timed

    cfg, hashes = inputs.cfg, inputs.hashes
    run = fit(
        inputs.slices,
        cfg,
        inputs.device,
        files.report_dir,
        echo,
        request.options,
        resume=resume,
        save_state=lambda trained, state: resume_file.save_state(
            files.state, name, asdict(trained), hashes, state
        ),  # the config the folds train with: a resumed run keeps its plan
        file_hashes=source_hashes(inputs.slices, hashes, ws.root),
        tensorboard=request.tensorboard / name if request.tensorboard else None,
    )
    run.meta["name"] = name
    with timed(run.timing, "checkpoints"):
        path = save_checkpoint(ws.models / f"{name}.pth", run.state_dicts(), run.meta)
    run.finish(files.report_dir, echo)
    write_json(files.report_dir / "options.json", dict(request.record))
    files.state.unlink(missing_ok=True)
    return TrainedModel(path, run.meta, files.report_dir, test_line(run.meta))


def source_hashes(slices: Sequence[Slice], hashes: dict[str, str], root: Path) -> dict[str, str]:
    """SHA-256 of each image file for the model's metadata, from the hashes the run already took."""
    from ..training.resume import input_key

    return {str(s.source): hashes[input_key(s.source, root)] for s in slices}

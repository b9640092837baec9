"""`train_model.py` / `paulow train`: validate the training folders, train, save, report, clear."""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from .. import distributed
from ..config import TrainConfig
from ..context import add_context
from ..device import pick_device, use_threads
from ..errors import UsageError
from ..intensity import normalisation_spec
from ..mask_classes import CLASS_NAMES_FILE, class_names_beside
from ..pair_loading import load_pairs
from ..palette import PALETTE_FILE, Palette, find_palette, from_colours, palette_names
from ..slices import Slice
from ..training.run import run_training, test_line
from ..workspace import Workspace
from .common import (
    add_file_log,
    ask_model_name,
    check_tensorboard,
    config_from_args,
    consume_inputs,
    effective_options,
    main_lock,
    quiet,
    read_fingerprints,
    remove_log,
    report_refused,
    require_writable,
    tensorboard_dir,
    unique_dir,
)

log = logging.getLogger("paulow")


def source_hashes(slices: Sequence[Slice], hashes: dict[str, str], root: Path) -> dict[str, str]:
    """SHA-256 of each image file for the model's metadata, from the hashes the run already took."""
    from ..training.resume import input_key

    return {str(s.source): hashes[input_key(s.source, root)] for s in slices}


def names_from_file(mask_dir: Path, classes: int) -> list[str]:
    """The class names of `classes.txt` beside the masks ([] without one); a count other than
    `classes` is an error naming the file."""
    names = class_names_beside(mask_dir)
    if names and len(names) != classes:
        raise UsageError(
            f"'{mask_dir / CLASS_NAMES_FILE}' names {len(names)} class(es) ({', '.join(names)}) "
            f"for --classes {classes}: one name per line, background (class 0) first"
        )
    return names


def _config(ws: Workspace, args, device: str) -> TrainConfig:
    """The run's settings from the options, with the palette (`--palette`, else `palette.txt` beside the
    masks) and class names (`--class-names`, else `classes.txt`, else the palette's) when not given."""
    cfg = config_from_args(args, device)
    palette = find_palette(ws.train_masks, cfg.mask_classes(), getattr(args, "palette", None))
    cfg.palette = palette.as_list() if palette else None
    if cfg.classes >= 2 and not cfg.class_names:
        cfg.class_names = names_from_file(ws.train_masks, cfg.classes) or palette_names(palette, cfg.classes)
    return cfg


def run_palette(cfg: TrainConfig, ws: Workspace, args) -> Palette | None:
    """The run's palette (its colours are in the settings, so a resumed run keeps them), named after
    its file for messages."""
    if not cfg.palette:
        return None
    given = getattr(args, "palette", None)
    path = Path(given) if given else ws.train_masks / PALETTE_FILE
    return from_colours(
        cfg.palette, cfg.mask_classes(), f"the palette '{path}'" if path.is_file() else "the run's palette"
    )


def _training_slices(ws: Workspace, cfg: TrainConfig, args, refused: list) -> list[Slice]:
    """The training pairs as the network sees them: normalised as `cfg` says (percentiles or --window),
    with --context's neighbouring sections as channels."""
    slices = load_pairs(
        ws.train_images,
        ws.train_masks,
        cfg.mask_classes(),
        normalisation_spec(cfg),
        refused=refused,
        palette=run_palette(cfg, ws, args),
    )
    return add_context(slices, cfg.context)


def run(args, echo=print) -> Path | None:
    """The whole train command; returns the saved model path (None on torchrun's other ranks).

    Under torchrun (see `paulow.distributed`) rank 0 alone prompts, holds the workspace lock,
    validates, writes the model and the report and clears the inputs; the other ranks train their
    share of the patches and follow rank 0's decisions."""
    from ..training import resume as resume_file
    from ..training.state import ProgressSaver

    check_tensorboard(args)
    ws = Workspace(Path(args.root))
    device = distributed.local_device(pick_device(args.device or "auto"))
    use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    distributed.init(device)
    distributed.main_first(lambda: ws.require(ws.train_images, ws.train_masks))
    if not distributed.is_main():
        _follow(ws, args, device)
        return None
    ws.models.mkdir(parents=True, exist_ok=True)

    def prepare() -> None:
        require_writable(ws, ws.models, [ws.train_images, ws.train_masks], args.keep_inputs)
        _settle(ws, echo)

    distributed.on_main(prepare)
    resumed = (
        distributed.on_main(lambda: _stopped_run(ws, args, device, echo))
        if getattr(args, "resume", None)
        else None
    )
    cfg = resumed["cfg"] if resumed else distributed.main_first(lambda: _config(ws, args, device))
    read_as = read_fingerprints(ws.train_images, ws.train_masks)  # before reading, see consume_inputs
    refused: list = []
    slices = distributed.main_first(lambda: _training_slices(ws, cfg, args, refused))
    slices = _fingerprinted(slices, read_as, ws, refused)
    report_refused(refused, args, "Train_Model", echo)
    inputs = sorted({s.source for s in slices} | {ws.train_masks / s.info["mask_file"] for s in slices})
    read_as = {f: read_as[f] for f in inputs}
    hashes = resume_file.input_hashes(read_as, ws.root)
    name = distributed.on_main(
        lambda: _resumed_name(ws, resumed, hashes, args.overwrite) if resumed else _new_name(ws, args, echo)
    )
    with main_lock(ws):
        report_dir = resumed["report_dir"] if resumed else ws.models / f"{name}_report"
        if not resumed and not args.overwrite:
            report_dir = unique_dir(report_dir)
        state_path = report_dir / resume_file.RESUME_FILE
        progress = ProgressSaver(
            lambda state: resume_file.save_state(state_path, name, asdict(cfg), hashes, state)
        )
        handler = add_file_log(report_dir / "train.log")
        try:
            path, meta = _train_and_save(
                ws,
                slices,
                cfg,
                device,
                name,
                report_dir,
                args,
                echo,
                resumed["payload"]["state"] if resumed else None,
                progress,
                source_hashes(slices, hashes, ws.root),
            )
        except BaseException:
            if state_path.exists():
                echo(
                    f"training stopped; nothing was deleted. To go on where it stopped: "
                    f"train_model.py --resume {name}"
                )
            raise
        finally:
            remove_log(handler)
        state_path.unlink(missing_ok=True)
        echo(f"saved model: {path}")
        echo(f"report: {report_dir}")
        echo(test_line(meta))
        consume_inputs(read_as, args.keep_inputs, "Train_Model", echo)
    return path


def _fingerprinted(slices: Sequence[Slice], read_as: dict, ws: Workspace, refused: list) -> list[Slice]:
    """The pairs whose files were fingerprinted before reading; a pair added in between is refused
    (kept for the next run), since clearing could not tell whether it changed after it was read."""

    def pair(s: Slice) -> set[Path]:
        return {s.source, ws.train_masks / s.info["mask_file"]}

    late = sorted({f for s in slices for f in pair(s) if f not in read_as})
    refused += [(f, "it was added while the run was starting - it is kept for the next run") for f in late]
    kept = [s for s in slices if not pair(s) & set(late)]
    if slices and not kept:
        raise UsageError("every training pair was added while the run was starting: run again")
    return kept


def _follow(ws: Workspace, args, device: str) -> None:
    """Training on a torchrun rank other than 0: the same collectives as rank 0's `run`, in the
    same order (its answers, settings and plan broadcast), then this rank's share of each epoch."""
    distributed.on_main(lambda: None)  # writable folders, settled stopped runs
    resumed = distributed.on_main(lambda: None) if getattr(args, "resume", None) else None
    if resumed:
        resumed["cfg"].device = device
    cfg = resumed["cfg"] if resumed else distributed.main_first(lambda: _config(ws, args, device))
    slices = distributed.main_first(lambda: _training_slices(ws, cfg, args, []))
    distributed.on_main(lambda: None)  # the model's name
    with main_lock(ws):
        run_training(
            slices,
            cfg,
            device,
            None,
            quiet,
            resume=resumed["payload"]["state"] if resumed else None,
            folds_explicit=getattr(args, "folds", None) is not None,
            epochs_explicit=getattr(args, "epochs", None) is not None,
        )
    return None


def _train_and_save(
    ws: Workspace,
    slices: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    name: str,
    report_dir: Path,
    args,
    echo,
    resume: dict | None,
    progress,
    file_hashes: dict[str, str],
) -> tuple[Path, dict]:
    """Plan, cross-validate, save the verified model file and the report; return (path, metadata)."""
    from ..checkpoint import save_checkpoint
    from ..training.timing import timed

    run = run_training(
        slices,
        cfg,
        device,
        report_dir,
        echo,
        resume=resume,
        progress=progress,
        file_hashes=file_hashes,
        folds_explicit=getattr(args, "folds", None) is not None,
        epochs_explicit=getattr(args, "epochs", None) is not None,
        tensorboard=tensorboard_dir(args, name),
    )
    run.meta["name"] = name
    with timed(run.timing, "checkpoints"):
        path = save_checkpoint(ws.models / f"{name}.pth", run.state_dicts(), run.meta)
    run.finish(report_dir, echo)
    _write_options(report_dir, args)
    return path, run.meta


def _settle(ws: Workspace, echo=print) -> None:
    """Tidy the states of runs killed after saving their model (only while no other run is going)."""
    from ..training import resume as resume_file

    try:
        with ws.lock():
            resume_file.settle_finished_runs(ws.models, echo)
    except UsageError:
        pass  # another run holds the workspace: its files are not ours to tidy


def _new_name(ws: Workspace, args, echo=print) -> str:
    """The new model's name (`--name` or asked), after pointing out runs that could be resumed; the
    name of a stopped run is refused (unless --overwrite: its state is then replaced)."""
    from ..training import resume as resume_file

    _mention_stopped_runs(ws, echo)
    default_name = f"model_{_dt.datetime.now():%Y%m%d_%H%M}"
    name = ask_model_name(args.name, ws.models, args.overwrite, args.yes, default_name)
    stopped = resume_file.stopped_run_named(ws.models, name)
    if stopped and not args.overwrite:
        raise UsageError(
            f"a stopped run named '{name}' can be continued with --resume {name}: do that, "
            "or choose another name (--overwrite discards the stopped run)"
        )
    if stopped:
        stopped.unlink(missing_ok=True)
        echo(f"--overwrite: discarded the stopped run '{name}'")
    return name


def _resumed_name(ws: Workspace, resumed: dict, hashes: dict[str, str], overwrite: bool) -> str:
    """The stopped run's name, once its inputs are checked and its model file name is still free."""
    from ..training import resume as resume_file

    resume_file.check_inputs(resumed["payload"]["inputs"], hashes)
    name = _valid_resumed_name(
        resumed["payload"].get("name"), resumed["report_dir"] / resume_file.RESUME_FILE
    )
    if (ws.models / f"{name}.pth").exists() and not overwrite:
        raise UsageError(
            f"a model '{name}.pth' exists already in '{ws.models}': move it away, or "
            "add --overwrite to replace it"
        )
    return name


def _valid_resumed_name(name, state: Path) -> str:
    """The model name a resume file carries, checked like `--name` (no folders, no `..`)."""
    from .common import check_new_name

    try:
        if not isinstance(name, str):
            raise ValueError("it is not text")
        return check_new_name(name, state.parent, overwrite=True)
    except ValueError as exc:
        raise UsageError(
            f"the resume file '{state}' names no valid model ({exc}): start a new run without --resume"
        ) from None


def _stopped_run(ws: Workspace, args, device: str, echo=print) -> dict:
    """The stopped run `--resume [NAME]` names: its resume file's payload, settings and report folder."""
    from ..training import resume as resume_file

    path = resume_file.find_state(ws.models, args.resume)
    payload = resume_file.load_state(path)
    known = set(TrainConfig.__dataclass_fields__)
    # a run saved before the tile subset existed validated whole images: its best Dice was measured so
    cfg = TrainConfig(**{"val_tiles": 0, **{k: v for k, v in payload["config"].items() if k in known}})
    cfg.device = device
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
    return {"payload": payload, "cfg": cfg, "report_dir": path.parent}


def _mention_stopped_runs(ws: Workspace, echo=print) -> None:
    from ..training import resume as resume_file

    runs = resume_file.resumable_runs(ws.models)
    if runs:
        names = ", ".join(p.parent.name.rsplit("_report", 1)[0] for p in runs)
        echo(f"note: stopped run(s) {names} can be continued with --resume NAME; starting a new run")


def _write_options(report_dir: Path, args) -> None:
    """The effective command-line/config-file options of the run, beside the training config."""
    from ..report import write_json

    write_json(report_dir / "options.json", effective_options(args))


__all__ = ["run"]

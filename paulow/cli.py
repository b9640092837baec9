"""`paulow <command>` and the four top-level scripts. Parsing only; heavy imports come after parsing.

Every prompt has a flag, every option can come from `--config FILE` (YAML or JSON), and errors a
user can cause print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import InterruptedRun, PaulowError, UsageError

COMMANDS = ("setup", "train", "predict", "finetune", "evaluate", "summary", "check-overfit", "export", "demo")
ALIASES = {"use": "predict", "segment": "predict"}


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 1")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 0")
    return value


def _float_where(text: str, ok, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not ok(value):  # NaN fails every comparison
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}")
    return value


def probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (NaN refused)."""
    return _float_where(text, lambda v: 0.0 < v < 1.0, "a number between 0 and 1 (e.g. 0.5)")


def tile_overlap(text: str) -> float:
    """An argparse type: a fraction in [0, 1)."""
    return _float_where(text, lambda v: 0.0 <= v < 1.0, "a fraction from 0 up to (not including) 1, e.g. 0.5")


def _root(p: argparse.ArgumentParser, default_root: Path) -> None:
    p.add_argument(
        "--root",
        type=Path,
        default=default_root,
        help=f"workspace folder holding Train_Model/, Use_Model/, Finetune_Model/ (default: {default_root})",
    )


def _common_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", "-y", action="store_true", help="accept every default; never prompt")
    p.add_argument("--keep-inputs", action="store_true", help="do not clear the input folders afterwards")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    p.add_argument("--config", type=Path, help="YAML or JSON file with any of these options")
    p.add_argument("--verbose", "-v", action="store_true", help="print the per-epoch log too")


def _name_list(text: str) -> list[str]:
    """ "a, b,c" -> ["a", "b", "c"]."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _class_weights(text: str) -> str | list[float]:
    """`--class-weights`: "auto" or one number per class, "1,2,4"."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return [float(w) for w in _name_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 'auto' or one number per class, e.g. 1,2,4"
        ) from None


def _training_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument(
        "--preset",
        choices=("cpu", "gpu", "paper"),
        help="defaults for the machine (auto: cpu or gpu); 'paper' = the published settings",
    )
    g.add_argument("--arch", help="paulow_attention_unet (default), attention_unet, unet, vgg16_unet")
    g.add_argument(
        "--encoder-weights",
        metavar="FILE",
        help="vgg16_unet: start the encoder from this VGG16 state dict (torchvision keys)",
    )
    g.add_argument(
        "--no-batch-norm", action="store_true", help="unet only: the original U-Net without batch norm"
    )
    g.add_argument("--batch-norm", action="store_true", help="vgg16_unet: the VGG16_bn variant")
    g.add_argument(
        "--norm",
        choices=("group", "batch", "layer", "instance", "none"),
        help="normalisation after each convolution (PAULow network: group, as published; "
        "unet/attention_unet: batch)",
    )
    g.add_argument("--dropout", type=float, help="Dropout2d after each decoder block (PAULow networks; 0.2)")
    g.add_argument("--width", type=int, help="channels of the first level (published: 64; CPU default 16)")
    g.add_argument("--depth", type=int, help="resolution levels (default 4)")
    g.add_argument("--classes", type=int, help="output classes (1 = binary; K > 1 reads masks as 0..K-1)")
    g.add_argument(
        "--class-names",
        type=_name_list,
        metavar="A,B,C",
        help="names of classes 0..K-1, background first (stored in the model file)",
    )
    g.add_argument(
        "--palette",
        type=Path,
        metavar="FILE",
        help="K > 1, colour (RGB) masks: one 'R G B [name]' line per class, background first "
        "(default: palette.txt in the masks folder; fine-tuning: else the model's)",
    )
    g.add_argument(
        "--class-weights",
        type=_class_weights,
        metavar="auto|W0,W1,...",
        help="K > 1: weigh each class in the loss: auto (inverse class frequency of the training "
        "masks) or one number per class",
    )
    g.add_argument(
        "--context",
        type=non_negative_int,
        metavar="N",
        help="2.5-D: feed sections z-N..z+N of each stack as input channels (mirrored at the first and "
        "last section); recorded in the model, which then segments stacks only (not measured yet: "
        "see docs/volumes.md)",
    )
    g.add_argument(
        "--window",
        metavar="LOW,HIGH|PRESET",
        help="fixed intensity window instead of percentiles: LOW..HIGH -> 0..1, clipped (CT: Hounsfield "
        "units, e.g. -160,240) or a preset: ct-soft-tissue, ct-abdomen, ct-liver, ct-brain, ct-lung, "
        "ct-bone; recorded in the model, so segmenting applies the same",
    )
    g.add_argument(
        "--border-weight",
        nargs="?",
        const="default",
        metavar="W0,SIGMA",
        help="weigh the BCE/CE loss terms by Ronneberger's border weight map (class balance + "
        "W0 exp(-(d1+d2)^2/2 SIGMA^2)), so gaps between touching objects count; bare flag: 10,5",
    )
    g.add_argument(
        "--boundary-target",
        nargs="?",
        const=2,
        type=positive_int,
        metavar="WIDTH",
        help="learn 3 classes (background, interior, boundary ring of WIDTH px, default 2) from the "
        "masks' instances (binary masks: connected components); use_model.py --instances then "
        "separates objects by a watershed from the interiors. Default for binary masks: on "
        "when most object pixels lie more than 2 px inside an object (nuclei, cells), off for "
        "thin structures; the plan says which",
    )
    g.add_argument(
        "--no-boundary-target",
        action="store_true",
        help="a plain binary model (one output), whatever the masks look like",
    )
    g.add_argument(
        "--loss",
        help="dynamic (default), dynamic_max1, bce, ce, ce_dice, dice, tversky, "
        "focal_tversky, focal (K > 1: softmax variants)",
    )
    g.add_argument(
        "--loss-args",
        type=json.loads,
        help='JSON of loss settings, e.g. \'{"high": 0.05, "alpha": 0.6, "beta": 0.4}\'',
    )
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--optimizer", choices=("adamw", "adam"))
    g.add_argument(
        "--schedule",
        choices=("cosine", "step", "constant"),
        help="learning rate: warm-up + cosine (default), step (x --gamma per epoch), constant",
    )
    g.add_argument("--gamma", type=float, help="per-epoch factor of --schedule step (default 0.92)")
    g.add_argument("--patch", type=int, help="patch size in pixels (default 128)")
    g.add_argument("--overlap", type=int, help="grid patch overlap in pixels (default 64)")
    g.add_argument("--per-epoch", type=int, help="patches drawn per epoch (0 = all)")
    g.add_argument("--no-augment", action="store_true", help="no flips, rotations or intensity changes")
    g.add_argument(
        "--no-rotate",
        action="store_true",
        help="no 90-degree turns (for structures with a preferred direction); flips stay",
    )
    g.add_argument("--seed", type=int)
    g.add_argument(
        "--time-limit",
        type=float,
        metavar="MINUTES",
        help="wall-clock budget for the whole run, a target (0 = none; CPU default 15)",
    )
    g.add_argument("--patience", type=int, help="epochs without a better validation Dice before stopping")
    g.add_argument(
        "--val-tiles",
        type=int,
        metavar="N",
        help="validate between epochs on a fixed, stratified subset of N inference tiles when the "
        "validation images have more (0 = whole images; CPU default 24)",
    )
    g.add_argument("--workers", type=int, help="data-loading worker processes (CPU default 0)")
    g.add_argument("--threshold", type=probability, help="probability threshold stored with the model (0.5)")


def _watch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help="also write TensorBoard event files (losses, Dice, loss regimes) to DIR/<model name>; "
        "needs pip install paulow[tensorboard]",
    )


def _add_setup(sub, root: Path) -> None:
    p = sub.add_parser("setup", help="create the drop folders")
    _root(p, root)
    p.add_argument("--config", type=Path, help="YAML or JSON file with any of these options")


def _add_train(sub, root: Path) -> None:
    p = sub.add_parser("train", help="train a model on Train_Model/TRAINING_IMAGES + TRAINING_MASKS")
    _root(p, root)
    _common_run(p)
    p.add_argument("--name", help="name of the new model (asked for when missing)")
    p.add_argument("--overwrite", action="store_true", help="replace a model of the same name")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="NAME",
        help="go on with a stopped run (Ctrl-C, crash) where it stopped, with its own settings: "
        "the newest one, or the run NAME; the training folders must hold the same files",
    )
    _training_options(p)
    _watch_options(p)
    g = p.add_argument_group("cross-validation")
    g.add_argument(
        "--folds",
        type=int,
        help="K-fold cross-validation (default: up to 5, as many as the time limit "
        "allows; given, it is obeyed; 1 = one split)",
    )
    g.add_argument("--test-fraction", type=float, help="held-out test share of images (default 0.1)")
    g.add_argument(
        "--ensemble",
        action="store_true",
        default=None,
        help="keep every fold model in the file and average them at inference",
    )


def _add_predict(sub, root: Path) -> None:
    p = sub.add_parser(
        "predict", aliases=["use", "segment"], help="segment Use_Model/INPUT_IMAGES with a saved model"
    )
    _root(p, root)
    _common_run(p)
    p.add_argument(
        "--model",
        help="model file name in Use_Model/saved_models (with or without .pth); "
        "with --input also a .pth path",
    )
    g = p.add_argument_group("inference")
    g.add_argument("--tile", type=positive_int, help="tile size (default: from the model)")
    g.add_argument("--overlap", type=tile_overlap, help="tile overlap fraction (default 0.5)")
    g.add_argument(
        "--batch-size",
        type=positive_int,
        help="tiles per batch (default: measured on a GPU, see docs/gpu.md; 8 on a CPU)",
    )
    g.add_argument(
        "--threshold",
        type=probability,
        help="probability threshold (default: from the model; a boundary model's is on 1 - P(background))",
    )
    g.add_argument("--tta", action="store_true", help="test-time flips and rotations, averaged")
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (20-60 s to start; for GPUs: no gain measured on a 2-core CPU)",
    )
    g.add_argument(
        "--runtime",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="what runs the network: torch (default) or onnxruntime (CPU only, export extra: "
        "about 1.5x faster on a 2-core CPU; masks differ in ~0.01%% of pixels, see docs/speed.md)",
    )
    g = p.add_argument_group("outputs")
    g.add_argument(
        "--save-prob",
        action="store_true",
        help="also write probability maps (float32 TIFF; K > 1 classes: "
        "one channel per class, labelled by class name)",
    )
    g.add_argument(
        "--overlay",
        action="store_true",
        help="PNG of each slice with the mask outline (K > 1: each class in its colour, with a legend)",
    )
    g.add_argument(
        "--instances",
        action="store_true",
        help="label objects; write objects.csv + summary.csv (K > 1: per class, with a class column)",
    )
    g.add_argument("--split-touching", action="store_true", help="watershed to split touching objects")
    g.add_argument(
        "--per-page",
        action="store_true",
        help="with --instances on a stack or volume: label objects per section (page) instead of "
        "linking them through z into 3-D objects",
    )
    g.add_argument(
        "--min-size",
        type=non_negative_int,
        metavar="PX",
        help="remove objects under PX pixels from masks and labels (default: the model's, tuned on "
        "its validation images in training; 0 keeps every object)",
    )
    g.add_argument(
        "--rois",
        action="store_true",
        help="X_rois.zip, one polygon ROI per object for Fiji's ROI Manager (implies --instances)",
    )
    g.add_argument(
        "--geojson",
        action="store_true",
        help="X_objects.geojson, one QuPath detection per object with its class and measurements "
        "(implies --instances)",
    )
    g.add_argument("--save-attention", action="store_true", help="write each attention gate's map")
    g = p.add_argument_group("any files, any size (chunked; see docs/large-images.md)")
    g.add_argument(
        "--input",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="files or folders (TIFF/OME-TIFF, OME-Zarr, PNG, ...) to segment in place of the "
        "drop folder; they are never cleared",
    )
    g.add_argument("--output", type=Path, metavar="DIR", help="folder for the outputs of --input")
    g.add_argument(
        "--chunk",
        type=positive_int,
        metavar="PX",
        help="chunk core size (default: from the memory available)",
    )
    g.add_argument(
        "--halo",
        type=positive_int,
        metavar="PX",
        help="boundary models: pixels read around a chunk to split touching objects (default: the "
        "largest training object + 1)",
    )
    g.add_argument(
        "--format",
        choices=("ome-zarr", "tiff", "ome-tiff"),
        help="output format (default: OME-Zarr for zarr inputs and images over 1 GiB, else TIFF; "
        "ome-tiff: tiled, pyramidal OME-TIFF for Fiji/QuPath)",
    )
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running dask scheduler (tcp://host:8786) instead of a local cluster for the run",
    )


def _add_finetune(sub, root: Path) -> None:
    p = sub.add_parser("finetune", help="adapt a saved model to Finetune_Model/INPUT_IMAGES + INPUT_MASKS")
    _root(p, root)
    _common_run(p)
    p.add_argument("--model", help="model to fine-tune (file name in saved_models)")
    _training_options(p)
    _watch_options(p)
    p.add_argument("--freeze-encoder", action="store_true", help="train decoder and attention gates only")
    p.add_argument("--holdout", type=float, default=None, help="held-out share of the new images (0.25)")
    p.add_argument(
        "--check",
        nargs=2,
        type=Path,
        metavar=("DIR_IMAGES", "DIR_MASKS"),
        help="old-domain images + masks: report both models' Dice there (forgetting)",
    )


def _add_evaluate(sub, root: Path) -> None:
    p = sub.add_parser("evaluate", help="score predicted masks (or a model) against ground truth")
    p.add_argument("--pred", type=Path, nargs="+", help="folder(s) or file(s) of predicted masks")
    p.add_argument("--truth", type=Path, required=False, help="folder or file of ground-truth masks")
    p.add_argument("--model", type=Path, nargs="+", help="model file(s): predict --images first")
    p.add_argument("--images", type=Path, help="images to predict with --model")
    p.add_argument("--compare", action="store_true", help="print the predictions/models side by side")
    p.add_argument(
        "--classes", type=int, help="class count of the masks (default 1, binary; with --model: the model's)"
    )
    p.add_argument(
        "--class-names",
        type=_name_list,
        metavar="A,B,C",
        help="names of classes 0..K-1 for the tables (default: the model's, else 'class 0', ...)",
    )
    p.add_argument(
        "--palette",
        type=Path,
        metavar="FILE",
        help="K > 1, colour (RGB) masks: one 'R G B [name]' line per class, background first "
        "(default: palette.txt beside the truth masks, else the model's)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        metavar="PX",
        help="distance in pixels within which tolerant_f1 counts a pixel as found (default 1)",
    )
    p.add_argument("--out", type=Path, help="folder for metrics.csv / metrics.json (default: beside --truth)")
    p.add_argument("--device", default=None)
    p.add_argument("--config", type=Path)
    p.add_argument("--verbose", "-v", action="store_true")


def _add_export(sub, root: Path) -> None:
    p = sub.add_parser("export", help="write a model as a bioimage.io package, ONNX or TorchScript")
    _root(p, root)
    p.add_argument("model", help="model file (a path, or a name in Use_Model/saved_models)")
    p.add_argument("--format", choices=("bioimageio", "onnx", "torchscript"), default="bioimageio")
    p.add_argument("--out", type=Path, help="folder for the exported files (default: beside the model)")
    p.add_argument(
        "--example",
        type=Path,
        help="a raw image (e.g. a training image) for the bioimage.io "
        "package's cover and test tensors (default: a synthetic one)",
    )


def _add_tools(sub, root: Path) -> None:
    p = sub.add_parser("summary", help="layer table, parameters and FLOPs per megapixel")
    p.add_argument("model", help="a .pth file or an architecture name")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--classes", type=int, default=1)
    p.add_argument("--verbose", "-v", action="store_true")
    p = sub.add_parser("check-overfit", help="train on one batch: does the loss go near zero?")
    _root(p, root)
    p.add_argument("--images", type=Path, help="image folder (default: Train_Model/TRAINING_IMAGES)")
    p.add_argument("--masks", type=Path, help="mask folder (default: Train_Model/TRAINING_MASKS)")
    _training_options(p)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--device", default=None)
    p.add_argument("--config", type=Path)
    p.add_argument("--verbose", "-v", action="store_true")
    p = sub.add_parser("demo", help="the whole loop on synthetic data in a temporary workspace")
    p.add_argument("--minutes", type=float, default=2.0, help="training budget")
    p.add_argument("--keep", type=Path, help="keep the workspace in this folder")
    p.add_argument("--verbose", "-v", action="store_true")


def build_parser(default_root: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paulow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_setup, _add_train, _add_predict, _add_finetune, _add_evaluate, _add_tools, _add_export):
        add(sub, default_root)
    return parser


def load_config(path: Path) -> dict:
    """Options from a YAML or JSON file (keys as on the command line, '-' or '_')."""
    if not path.is_file():
        raise UsageError(f"config file '{path}' not found: check --config")
    from .textfile import load_yaml, read_text

    text = read_text(path, "config file", "check --config")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands of levels deep
            raise UsageError(f"config file '{path}' is not valid JSON ({exc}): fix the file") from None
    else:
        data = load_yaml(text, path, "check --config")
    if not isinstance(data, dict):
        raise UsageError(f"config file '{path}' must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _apply_config(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse twice: once to find --config, then with the file's values as defaults."""
    args = parser.parse_args(argv)
    cfg_path = getattr(args, "config", None)
    if not cfg_path:
        return args
    values = load_config(cfg_path)
    sub = _subparser(parser, args.command)
    known = {a.dest for a in sub._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"config file '{cfg_path}' has unknown option(s): {', '.join(unknown)}")
    for key in ("root", "truth", "images", "masks", "palette"):
        if isinstance(values.get(key), str):
            values[key] = Path(values[key])
    sub.set_defaults(**values)
    args = parser.parse_args(argv)
    args.config_file_values = values
    return args


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("paulow")
    if not any(getattr(h, "_paulow_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._paulow_console = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    for h in logger.handlers:
        if getattr(h, "_paulow_console", False):
            h.setLevel(logging.INFO if verbose else logging.WARNING)
            h.stream = sys.stderr  # type: ignore[attr-defined]  # this call's stream (in-process reruns)
    logger.setLevel(logging.INFO)
    logger.propagate = False


COMPUTE_COMMANDS = {"train", "predict", "finetune", "evaluate", "check-overfit", "demo"}


def _dispatch(args: argparse.Namespace) -> int:
    command = ALIASES.get(args.command, args.command)
    if command in COMPUTE_COMMANDS and getattr(args, "device", None) in (None, "auto", "cpu"):
        from .device import choose_wait_policy

        choose_wait_policy()  # before the command imports torch
    run: Callable[..., object]  # commands return an exit code or the model they wrote
    if command == "setup":
        from .commands.setup import run
    elif command == "train":
        from .commands.train import run
    elif command == "predict" and getattr(args, "input", None):
        from .commands.predict_files import run
    elif command == "predict":
        from .commands.segment import run
    elif command == "finetune":
        from .commands.finetune import run
    elif command == "evaluate":
        from .commands.evaluate import run
    elif command == "summary":
        from .commands.tools import run_summary as run
    elif command == "check-overfit":
        from .commands.tools import run_check_overfit as run
    elif command == "export":
        from .commands.tools import run_export as run
    else:
        from .demo import run
    result = run(args)
    code = result if isinstance(result, int) else 0
    return code or (1 if getattr(args, "refused_files", 0) else 0)  # some input files were refused


def main(argv: Sequence[str] | None = None, default_root: Path | None = None) -> int:
    """Entry point of `paulow` and the scripts. Returns the exit code (a torchrun rank leaves the
    process group and exits with it, see `distributed.exit_process`)."""
    from .stopping import handled

    code = None
    try:
        with handled():  # SIGTERM/SIGHUP stop the run like Ctrl-C; `| head -1` does not abort it
            code = _run(argv, default_root)
        return code
    finally:
        if "torch.distributed" in sys.modules:  # never imports torch for commands that did not
            from . import distributed

            was_distributed = distributed.active()
            distributed.shutdown()
            if was_distributed and code is not None:
                distributed.exit_process(code)


def _run(argv: Sequence[str] | None, default_root: Path | None) -> int:
    """`main` without the process-group teardown."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(default_root or Path.cwd())
    try:
        args = _apply_config(parser, argv)
        from .options_check import check_namespace

        check_namespace(
            args,
            ALIASES.get(args.command, args.command),
            getattr(args, "config_file_values", None),
            getattr(args, "config", None),
        )
        _setup_logging(getattr(args, "verbose", False))
        return _dispatch(args)
    except InterruptedRun as exc:
        print(f"\ninterrupted: {exc}", file=sys.stderr)
        return exc.exit_code
    except PaulowError as exc:
        if not getattr(exc, "reported_by_main", False):  # under torchrun rank 0 reports it once
            print(f"error{_rank_note()}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (paulow.stopping)
        from .stopping import exit_code, how

        print(
            f"\ninterrupted ({how(exc)}): nothing was deleted; the input folders are as they were",
            file=sys.stderr,
        )
        return exit_code(exc)
    except OSError as exc:  # a full disk, a read-only folder, a name too long: one line, inputs kept
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 2


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: what happened, where, and the fix."""
    import errno
    import re

    where = exc.filename or "an output file"
    short_write = exc.errno is None and re.search(
        r"\d+ requested and \d+ written", str(exc)
    )  # numpy's tofile
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or short_write:
        return f"{where}: disk full - free some space and rerun (the inputs were kept)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"permission denied at '{where}': make that folder writable (or run with "
            "--keep-inputs if only the input folder is read-only); the inputs were kept"
        )
    if exc.errno == errno.ENAMETOOLONG:
        return f"file name too long: '{str(where)[:60]}...': choose a shorter name"
    return f"{exc.strerror or type(exc).__name__} at '{where}': check that path (the inputs were kept)"


def _rank_note() -> str:
    """` (rank N)` on torchrun's ranks other than 0, else nothing."""
    from . import distributed

    try:
        return f" (rank {distributed.rank()})" if not distributed.is_main() else ""
    except PaulowError:  # the torchrun variables themselves are the error
        return ""


def script_main(command: str, script_file: str) -> Callable[[], None]:
    """Run one command for a top-level script whose default root is the script's folder."""
    root = Path(script_file).resolve().parent
    sys.exit(main([command, *sys.argv[1:]], default_root=root))

"""The argument parsers of `paulow`'s commands (parsing only: nothing heavy is imported here)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli_training import training_options, watch_options
from .cli_types import name_list, non_negative_int, positive_int, probability, tile_overlap

DESCRIPTION = (
    "`paulow <command>` and the four top-level scripts. Parsing only; heavy imports come after parsing."
)


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
    training_options(p)
    watch_options(p)
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
    _inference_options(p.add_argument_group("inference"))
    _output_options(p.add_argument_group("outputs"))
    _chunked_options(p.add_argument_group("any files, any size (chunked; see docs/large-images.md)"))


def _inference_options(g) -> None:
    """How `predict` runs the network: tiles, batches, threshold, TTA, runtime."""
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


def _output_options(g) -> None:
    """What `predict` writes besides the masks."""
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


def _chunked_options(g) -> None:
    """`predict --input`: any files, any size, chunk by chunk."""
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
    training_options(p)
    watch_options(p)
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
        type=name_list,
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
    training_options(p)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--device", default=None)
    p.add_argument("--config", type=Path)
    p.add_argument("--verbose", "-v", action="store_true")
    p = sub.add_parser("demo", help="the whole loop on synthetic data in a temporary workspace")
    p.add_argument("--minutes", type=float, default=2.0, help="training budget")
    p.add_argument("--keep", type=Path, help="keep the workspace in this folder")
    p.add_argument("--verbose", "-v", action="store_true")


def build_parser(default_root: Path) -> argparse.ArgumentParser:
    """The parser of `paulow` and its sub-commands; `default_root` is `--root`'s default."""
    parser = argparse.ArgumentParser(prog="paulow", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_setup, _add_train, _add_predict, _add_finetune, _add_evaluate, _add_tools, _add_export):
        add(sub, default_root)
    return parser

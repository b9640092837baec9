"""The training options of the command line (`train`, `finetune`, `check-overfit`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli_types import class_weights, name_list, non_negative_int, positive_int, probability


def training_options(p: argparse.ArgumentParser) -> None:
    """The training options of `train`, `finetune` and `check-overfit`, in one argument group."""
    g = p.add_argument_group("training")
    for add in (_network_options, _class_options, _loss_options, _schedule_options, _budget_options):
        add(g)


def _network_options(g) -> None:
    """The network: architecture, normalisation, width, depth."""
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


def _class_options(g) -> None:
    """Classes: their count, names, colours and weights, and the input channels."""
    g.add_argument("--classes", type=int, help="output classes (1 = binary; K > 1 reads masks as 0..K-1)")
    g.add_argument(
        "--class-names",
        type=name_list,
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
        type=class_weights,
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


def _loss_options(g) -> None:
    """The loss and the target: border weights, boundary classes."""
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


def _schedule_options(g) -> None:
    """Epochs, batches, learning rate and its schedule, patches and augmentation."""
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


def _budget_options(g) -> None:
    """Time limit, early stopping, validation, workers and the stored threshold."""
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


def watch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help="also write TensorBoard event files (losses, Dice, loss regimes) to DIR/<model name>; "
        "needs pip install paulow[tensorboard]",
    )

"""The public Python API: train, predict, save, load, fine-tune and evaluate from arrays or files.

No prompts, no drop folders; progress (lines and a `tqdm.auto` bar) unless `verbose=False`::

    import paulow
    model = paulow.train(images, masks, time_limit=10)
    pred = model.predict(image)
    labels = pred.labels(split_touching=True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from .config import TrainConfig
from .errors import ShapeMismatchError, UsageError
from .progress import progress

ArrayOrPath = np.ndarray | str | Path
Echo = Callable[[str], None]
OnEpoch = Callable[[dict], None]
OnTile = Callable[[int, int, int], None]


def _tensorboard(folder: str | Path | None) -> Path | None:
    """The TensorBoard folder, after checking (before any work) that the package is there."""
    if not folder:
        return None
    from .watch import tensorboard_writer_class

    tensorboard_writer_class()
    return Path(folder)


@dataclass
class Prediction:
    """One slice's result: probabilities (K, H, W) float32 and the mask (H, W) uint8 (objects under
    `min_size` px removed for binary and boundary models)."""

    probabilities: np.ndarray
    mask: np.ndarray
    threshold: float = 0.5
    image: np.ndarray | None = field(default=None, repr=False)  # the raw (C, H, W) input
    boundary: bool = False  # from a `boundary_target` model: the mask is its objects
    min_size: int = 0  # px: the model's smallest object (tuned in training) unless told otherwise
    boundary_width: int | None = None  # a boundary model's ring width (px): `evaluate` scores its classes

    def labels(self, split_touching: bool = False, min_size: int | None = None) -> np.ndarray:
        """Instance labels (H, W): 8-connected objects, touching ones split by watershed if asked;
        a boundary model's by the seeded watershed of its interiors (`split_touching` unused).
        Objects under `min_size` px (default: the prediction's) are removed."""
        from .postprocess import label_instances

        small = self.min_size if min_size is None else min_size
        if self.boundary:
            from .boundaries import instances_from_boundaries
            from .object_size import remove_small

            return remove_small(
                instances_from_boundaries(self.probabilities, threshold=self.threshold), small
            )
        return label_instances(self.mask, split_touching=split_touching, min_size=small)

    def rethreshold(self, threshold: float | None = None, min_size: int | None = None) -> Prediction:
        """The same probabilities with another threshold and/or smallest object size (px): a new
        `Prediction` at once, without running the network again (defaults: this one's)."""
        from dataclasses import replace

        from .remask import mask_from

        cut = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= cut <= 1.0:
            raise UsageError(f"threshold {threshold} is outside 0..1")
        small = self.min_size if min_size is None else int(min_size)
        return replace(
            self, mask=mask_from(self.probabilities, cut, self.boundary, small), threshold=cut, min_size=small
        )

    def objects(
        self,
        split_touching: bool = False,
        min_size: int | None = None,
        pixel_size: float | None = None,
        unit: str | None = None,
    ) -> list[dict]:
        """One row per object: label, area, centroid, bounding box, mean intensity of the input."""
        from .postprocess import object_table

        return object_table(
            self.labels(split_touching, min_size), self.image, pixel_size=pixel_size, unit=unit
        )

    def geojson(
        self,
        path: str | Path | None = None,
        *,
        split_touching: bool = False,
        min_size: int | None = None,
        object_type: str = "detection",
        class_name: str = "foreground",
        pixel_size: float | None = None,
        unit: str | None = None,
    ) -> dict:
        """The objects as a QuPath-ready GeoJSON FeatureCollection (polygons on pixel edges, the
        `objects()` columns as measurements), also written to `path` when given."""
        from .geojson import feature_collection, page_features, write_geojson
        from .postprocess import object_table

        labels = self.labels(split_touching, min_size)
        rows = object_table(labels, self.image, pixel_size=pixel_size, unit=unit)
        features = page_features(labels, rows, object_type=object_type, class_name=class_name)
        if path is not None:
            write_geojson(path, features)
        return feature_collection(features)


def _as_stack(image: ArrayOrPath, axes: str | None = None) -> np.ndarray:
    """A raw (pages, C, H, W) stack from a path or an array read as `axes` (`paulow.array_axes`)."""
    return _stack_and_name(image, axes)[0]


def _stack_and_name(image: ArrayOrPath, axes: str | None = None, index: int = 0) -> tuple[np.ndarray, str]:
    """The stack and the name its messages use: the file, or "array<i> read as <axes>"."""
    if isinstance(image, (str, Path)):
        from .io import read_image

        return read_image(Path(image)).data, Path(image).name
    from .array_axes import as_pages_channels

    stack, used = as_pages_channels(np.asarray(image), axes)
    return stack, f"{_name(image, index)} read as {used}" + ("" if axes else " (pass axes= if not)")


def _as_masks(mask: ArrayOrPath, classes: int = 1, palette=None) -> np.ndarray:
    """A (pages, H, W) mask stack from a path (K >= 2 colour masks through `palette`) or an (H, W) array."""
    if isinstance(mask, (str, Path)):
        from .palette import read_class_mask

        return read_class_mask(Path(mask), classes, palette)
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ShapeMismatchError(f"a mask must be (H, W), not {array.shape}")
    return array[None]


def _name(item: ArrayOrPath, index: int) -> Path:
    return Path(item) if isinstance(item, (str, Path)) else Path(f"array{index + 1}")


def make_slices(
    images: ArrayOrPath | Sequence[ArrayOrPath],
    masks: ArrayOrPath | Sequence[ArrayOrPath],
    classes: int = 1,
    normalisation: dict | None = None,
    palette: list | None = None,
    labelled: np.ndarray | Sequence[np.ndarray | None] | None = None,
) -> list:
    """`Slice` records (normalised images, binarised masks) from arrays or file paths; K >= 2 colour
    mask files are mapped through `palette` (`[[R, G, B], ...]`, one colour per class).

    `labelled` (sparse labels): per mask, a boolean array of its shape marking the labelled pixels
    (None for a dense mask); the others are ignored by training and scores (`paulow.losses`), and
    pages with no labelled pixel are left out."""
    from .data import NORMALISATION, Slice, class_target, foreground_fraction, instance_source, normalise_with
    from .palette import from_colours

    if isinstance(images, (np.ndarray, str, Path)) or isinstance(masks, (np.ndarray, str, Path)):
        images, masks = cast("list[ArrayOrPath]", [images]), cast("list[ArrayOrPath]", [masks])
        labelled = [labelled] if isinstance(labelled, np.ndarray) else labelled
    if len(images) != len(masks):
        raise ShapeMismatchError(f"{len(images)} image(s) but {len(masks)} mask(s): give one mask per image")
    marks = _labelled_pages(labelled, len(masks))
    spec = normalisation or NORMALISATION
    colours = from_colours(palette, classes, "palette") if palette and classes >= 2 else None
    slices, pairs = [], []
    for i, (image, mask) in enumerate(zip(images, masks)):
        if isinstance(image, (str, Path)) and isinstance(mask, (str, Path)):
            from .volumes import check_mask_geometry

            check_mask_geometry(image, mask)
        stack, target, source = _as_stack(image), _as_masks(mask, classes, colours), _name(image, i)
        if stack.shape[0] != target.shape[0] or stack.shape[2:] != target.shape[1:]:
            raise ShapeMismatchError(
                f"image {source.name} is {stack.shape} (pages, C, H, W) but its mask "
                f"is {target.shape} (pages, H, W): they must match"
            )
        pairs.append((Path(mask).name if isinstance(mask, (str, Path)) else f"mask {i + 1}", target, stack))
        painted = _painted(marks[i], target.shape, i)
        for page, (raw, m) in enumerate(zip(stack, target)):
            if painted is not None and not painted[page].any():
                continue  # nothing labelled on this page: nothing to learn or score
            labels = instance_source(m, classes)
            m = class_target(m, classes, source.name, page)
            info = {"file": source.name, "page": page, "foreground_fraction": foreground_fraction(m)}
            valid = None if painted is None else painted[page]
            slices.append(Slice(normalise_with(raw, spec), m, source, page, info, labels, valid))
    from .swapped import check_masks_not_images

    check_masks_not_images(pairs, "the masks given", classes)
    if not slices:
        raise ShapeMismatchError("no labelled pixel in any mask (labelled= is all False): label some pixels")
    return slices


def _labelled_pages(labelled, count: int) -> list:
    """One entry per mask: its labelled pixels, or None (dense)."""
    if labelled is None:
        return [None] * count
    if len(labelled) != count:
        raise ShapeMismatchError(
            f"{len(labelled)} labelled-pixel mask(s) for {count} mask(s): give one per mask (or None)"
        )
    return list(labelled)


def _painted(mark, shape: tuple[int, ...], index: int) -> np.ndarray | None:
    """A mask's labelled pixels as bool (pages, H, W) of the mask's `shape`, or None (dense)."""
    if mark is None:
        return None
    array = np.asarray(mark, dtype=bool)
    array = array[None] if array.ndim == 2 else array
    if array.shape != tuple(shape):
        raise ShapeMismatchError(
            f"labelled pixels of mask {index + 1} are {array.shape[-2:]} but the mask is {shape[-2:]}: "
            "give one boolean array of the mask's shape"
        )
    return array


class Model:
    """Trained networks (one, or an ensemble) with the metadata that describes them."""

    def __init__(self, networks: list, meta: dict, device: str = "cpu") -> None:
        self.networks = list(networks)
        self.meta = dict(meta)
        self.device = device  # where the networks are; predictions run there unless told otherwise

    def __repr__(self) -> str:
        return (
            f"Model(arch={self.meta.get('arch')!r}, classes={self.classes}, "
            f"in_channels={self.in_channels}, members={len(self.networks)}, threshold={self.threshold:.2f})"
        )

    @property
    def classes(self) -> int:
        """1 for a binary task, else the number of classes (background included)."""
        return int(self.meta.get("classes", 1))

    @property
    def in_channels(self) -> int:
        """Channels of the images the model was trained on (others are converted, with a warning)."""
        return int(self.meta["in_channels"])

    @property
    def threshold(self) -> float:
        """Probability threshold of a binary model, or on a boundary model's object probability
        1 - P(background) (tuned on validation images in training)."""
        return float(self.meta.get("threshold", 0.5))

    @threshold.setter
    def threshold(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise UsageError(f"threshold {value} is outside 0..1")
        self.meta["threshold"] = float(value)

    def predict(
        self,
        image: ArrayOrPath | Sequence[ArrayOrPath],
        *,
        threshold: float | None = None,
        tile: int | None = None,
        overlap: float | None = None,
        tta: bool = False,
        device: str | None = None,
        batch_size: int = 8,
        min_size: int | None = None,
        axes: str | None = None,
        verbose: bool = True,
        on_tile: OnTile | None = None,
    ) -> Prediction | list[Prediction]:
        """Segment one raw image (or a one-page file) with tiled inference; a list of images gives
        a list of `Prediction`s (with a `tqdm.auto` bar unless `verbose=False`).

        An array is (H, W), (C, H, W), or channels-last (H, W, 3|4) RGB(A); `axes` names another
        layout ("YXC", "CYX", ...). The image is normalised as in training (percentiles stored in
        the model); `threshold` (default: the model's, tuned on validation images), `tile` (default:
        from the model and the device), `overlap` (tile overlap fraction, default 0.5), `tta` (flips
        and turns averaged), `min_size` (px: objects smaller are removed; default the model's),
        `on_tile(page, done, total)` after each batch of tiles (raise `paulow.errors.Cancelled` in it
        to stop).
        """
        options: dict[str, Any] = {
            "threshold": threshold,
            "tile": tile,
            "overlap": overlap,
            "tta": tta,
            "device": device,
            "batch_size": batch_size,
            "min_size": min_size,
            "axes": axes,
            "on_tile": on_tile,
        }
        if isinstance(image, (list, tuple)):
            from tqdm.auto import tqdm

            return [
                cast(Prediction, self.predict(item, **options, verbose=False))  # one image each
                for item in tqdm(image, desc="segmenting", unit="image", disable=not verbose)
            ]
        preds = self.predict_stack(cast(ArrayOrPath, image), **options)  # not a list or tuple here
        if len(preds) != 1:
            raise UsageError(f"the image has {len(preds)} pages: use Model.predict_stack for stacks")
        return preds[0]

    def predict_stack(
        self,
        image: ArrayOrPath,
        *,
        threshold: float | None = None,
        tile: int | None = None,
        overlap: float | None = None,
        tta: bool = False,
        device: str | None = None,
        batch_size: int = 8,
        min_size: int | None = None,
        axes: str | None = None,
        on_tile: OnTile | None = None,
    ) -> list[Prediction]:
        """One `Prediction` per page of a file, or of a (pages, C, H, W) array, or of an array read as
        `axes` (e.g. "ZYX", "TZCYX"), or of an image `predict_files` read ahead; options as `predict`."""
        from .multi_file import PreparedImage
        from .predict import choose_threshold, predict_pages

        prepared = image if isinstance(image, PreparedImage) else None  # read + normalised already
        if prepared is not None:
            stack, name = prepared.data, str(prepared.path)
        else:
            stack, name = _stack_and_name(image, axes)
        cut = choose_threshold(self.meta, threshold)
        probs = predict_pages(
            self.networks,
            self.meta,
            prepared.pages if prepared else stack,
            tile=tile,
            overlap=overlap,
            tta=tta,
            device=device or self.device,
            batch_size=batch_size,
            name=name,
            normalised=prepared is not None,
            on_tile=on_tile,
        )
        from .boundaries import boundary_width, is_boundary_model
        from .object_size import choose_min_size
        from .remask import mask_from

        boundary = is_boundary_model(self.meta)
        small = choose_min_size(self.meta, min_size)
        return [
            Prediction(
                p.astype(np.float32, copy=False),
                mask_from(p, cut, boundary, small),
                cut,
                page,
                boundary,
                small,
                boundary_width(self.meta),
            )
            for p, page in zip(probs, stack)
        ]

    def predict_files(self, paths: Sequence[str | Path], **options: Any):
        """Yield `(path, predict_stack(path, **options))` for each file in order; the next file is
        read and normalised in a background thread while the network works (`paulow.multi_file`)."""
        from .multi_file import predict_files

        return predict_files(self, paths, **options)

    def segment_files(self, paths: Sequence[str | Path], out_dir: str | Path, **options: Any) -> list[Path]:
        """Write `<stem>_mask.tif` into `out_dir` for each file (free names, nothing overwritten), the
        next file read and the previous mask written in background threads; the written paths in
        input order. Options as `predict_stack`."""
        from .multi_file import segment_files

        return segment_files(self, paths, out_dir, **options)

    def choose_settings(
        self,
        work_mpix: float,
        largest_side: int,
        *,
        device: str | None = None,
        overlap: float | None = None,
        tta: bool = False,
        tile: int | None = None,
        batch_size: int | None = None,
    ):
        """Tile and batch size (and `torch.compile` for long runs) measured on the device for
        `work_mpix` megapixels of images up to `largest_side` px (`paulow.device_probe`; cached per
        device and network); `tile`/`batch_size` given are kept. Returns the `Choice` (its
        `reason` says why); compiled networks replace the model's when compiling pays off."""
        from .device_probe import probe

        overlap = overlap if overlap is not None else float(self.meta.get("overlap", 0.5))
        choice, self.networks = probe(
            self.networks,
            self.meta,
            device or self.device,
            work_mpix,
            overlap=overlap,
            largest_side=largest_side,
            tta=tta,
            tile=tile,
            batch_size=batch_size,
        )
        return choice

    def predict_file(
        self,
        path: str | Path,
        out: str | Path,
        *,
        chunk: int | None = None,
        format: str | None = None,
        scheduler: Any = None,
        threshold: float | None = None,
        min_size: int | None = None,
        tile: int | None = None,
        overlap: float | None = None,
        tta: bool = False,
        device: str | None = None,
        batch_size: int = 8,
        progress: bool = False,
        echo: Echo | None = None,
        halo: int | None = None,
    ) -> dict:
        """Segment a file of any size chunk by chunk into the folder `out`; the input is never changed.

        Reads TIFF/OME-TIFF (tiled ones lazily), OME-Zarr and the other image formats; writes
        `NAME.ome.zarr` (probability image, `labels/mask`, `labels/objects`, with pyramids) or, with
        `format="tiff"`, `NAME_mask.tif` / `NAME_labels.tif` (default: OME-Zarr for zarr inputs and
        images over 1 GiB). `chunk`: chunk core side in px (default: from the memory available).
        `scheduler`: None (a dask `LocalCluster` for the run), a scheduler address, a
        `distributed.Client`, or "sync" (no dask). A run stopped part-way and started again with the
        same arguments finishes only the missing chunks. Returns the run record (also written as
        `NAME.paulow-run.json`): outputs, chunking, normalisation statistics, model SHA-256, workers.
        Objects are 8-connected components across chunks; a boundary model's are the seeded
        watershed of `Prediction.labels()`, run on each chunk plus `halo` px around it (default: the
        largest training object + 1 px); objects reaching past the halo are logged as a warning.
        """
        from .chunked_run import predict_file
        from .dask_runner import TaskRunner

        device = device or self.device
        with TaskRunner(scheduler, device) as runner:
            return predict_file(
                self,
                Path(path),
                Path(out),
                chunk=chunk,
                fmt=format,
                runner=runner,
                threshold=threshold,
                min_size=min_size,
                tile=tile,
                overlap=overlap,
                halo=halo,
                batch_size=batch_size,
                tta=tta,
                device=device,
                progress=progress,
                echo=echo,
            )

    def save(self, path: str | Path) -> Path:
        """Write a self-describing `.pth` model file (atomic, verified); return its path. The model
        takes the file's name (`nuclei.pth`: "nuclei"), as `train_model.py` names its models."""
        from .checkpoint import save_checkpoint

        self.meta["name"] = Path(path).stem
        return save_checkpoint(Path(path), [n.state_dict() for n in self.networks], self.meta)

    def export(
        self,
        format: str = "bioimageio",
        out: str | Path = ".",
        name: str | None = None,
        example: ArrayOrPath | None = None,
    ) -> list[Path]:
        """Write the model for other tools (`paulow.export`): `bioimageio` (a validated model package
        zip for Fiji/deepImageJ, ilastik, QuPath), `onnx` or `torchscript` (each with a JSON of the
        normalisation and threshold). Files go to `out`, named `name` (default: the model's name);
        nothing there is overwritten. `example` (a raw image or its path, e.g. a training image)
        gives the package its cover and test tensors. Returns the written paths."""
        import tempfile

        from .checkpoint import save_checkpoint
        from .export import export_model

        stem = name or self.meta.get("name") or "paulow_model"
        with tempfile.TemporaryDirectory() as tmp:
            saved = save_checkpoint(
                Path(tmp) / f"{stem}.pth",
                [n.state_dict() for n in self.networks],
                {**self.meta, "name": stem},
            )
            return export_model(saved, format, Path(out), example)


def load_model(path: str | Path, device: str = "cpu") -> Model:
    """Load a PAULow model file (or an original PAULow state dict) safely (`weights_only`)."""
    from .checkpoint import load_checkpoint

    loaded = load_checkpoint(Path(path), device)
    return Model(loaded.models, {**loaded.meta, "name": loaded.meta.get("name") or Path(path).stem}, device)


def list_models(folder: str | Path) -> list[dict]:
    """One row per readable model file in `folder` (e.g. `Use_Model/saved_models`), newest first: name,
    path, classes, target, tile, threshold, smallest object and scores (`paulow.model_catalog`)."""
    from .model_catalog import list_models as rows

    return rows(folder)


def model_summary(path: str | Path) -> dict:
    """The `list_models` row of one model file (reads its metadata only)."""
    from .model_catalog import model_summary as row

    return row(path)


def _networks(cfg: TrainConfig, in_channels: int, state_dicts: list[dict], device: str) -> list:
    from .training.network import build_network

    nets = []
    for sd in state_dicts:
        net = build_network(cfg, in_channels, device, 0)
        net.load_state_dict(sd)
        nets.append(net.eval())
    return nets


def train(
    images: Sequence[ArrayOrPath] | ArrayOrPath,
    masks: Sequence[ArrayOrPath] | ArrayOrPath,
    *,
    time_limit: float | None = 10,
    classes: int = 1,
    config: TrainConfig | None = None,
    preset: str | None = None,
    device: str = "cpu",
    report_dir: str | Path | None = None,
    echo: Echo | None = None,
    tensorboard: str | Path | None = None,
    on_epoch: OnEpoch | None = None,
    verbose: bool = True,
    labelled: Sequence[np.ndarray | None] | None = None,
    **options: Any,
) -> Model:
    """Train a model from raw images and their masks (arrays or file paths, stacks included).

    Runs what `train_model.py` runs: the time limit is planned into folds and validation, one
    network per fold is trained by cross-validation, the best fold (or, with `ensemble=True`, all)
    is kept with a threshold tuned on its validation images.

    - `time_limit`: minutes for the whole run (0 or None: the epochs decide).
    - `classes`: 1 = binary (masks: 0 / non-zero); K > 1: masks hold 0..K-1.
    - `boundary_target` (an option): "auto" by default for `classes=1`: objects with an inside (at
      least half their pixels more than 2 px from an edge) are learnt as background / interior /
      boundary, so `Prediction.labels()` separates touching ones; thin or small objects keep the
      binary target. A width in px forces it, 0 turns it off (`model.meta["boundary_target"]` says).
    - `config`: a `paulow.config.TrainConfig` to start from instead of the device's preset;
      `time_limit`, `classes` and `options` are applied over it (its `boundary_target` too: None
      is binary).
    - `options`: any `TrainConfig` field (`epochs`, `width`, `depth`, `patch`, `overlap`, `folds`,
      `loss`, `loss_args`, `lr`, `optimizer`, `schedule`, `augment`, `rotate`, `ensemble`, ...) and
      the network options `norm`, `dropout`, `batch_norm`; an unknown name is a `UsageError`.
    - `report_dir`: write the training report (curves, metrics, timing) there; `echo`: progress lines;
      `tensorboard`: a folder for TensorBoard event files (the `tensorboard` extra).
    - `on_epoch`: called after every epoch with a dict: `fold`, `epoch`, `folds` (the folds the run
      now plans), `epochs` (each fold's cap), `train_loss`, `val_loss` and `val_dice` (None when the
      epoch did not validate), `lr`, `patches`, `regime_empty|small|large` (the dynamic loss's
      patches per regime); e.g. to draw the loss live in a notebook.
    - `verbose` (default): the run's lines and a bar of epochs (`tqdm.auto`: a widget in Jupyter);
      False: silent (only `echo` and `on_epoch` are called).
    - `labelled` (sparse labels): per mask, a boolean array marking its labelled pixels (None: all
      of them); unlabelled pixels are ignored by the loss, the patch sampling and every score (see
      `make_slices`; the napari correction loop paints them).
    """
    from .config import config_from_options
    from .training.run import run_training

    board = _tensorboard(tensorboard)
    given = {
        **(asdict(config) if config is not None else {}),
        **options,
        "classes": classes,
        "time_limit": time_limit or 0,
    }
    if config is not None and given.get("boundary_target") is None:
        given["boundary_target"] = 0  # a TrainConfig's None is the binary target, not "not given"
    cfg = config_from_options(given, preset, device)
    from .context import add_context
    from .intensity import normalisation_spec

    slices = add_context(
        make_slices(
            images, masks, cfg.mask_classes(), normalisation_spec(cfg), palette=cfg.palette, labelled=labelled
        ),
        cfg.context,
    )
    report = Path(report_dir) if report_dir else None
    say, on_epoch, bar = progress(verbose, echo, on_epoch, "training")
    try:
        run = run_training(
            slices,
            cfg,
            device,
            report,
            say,
            folds_explicit="folds" in options or config is not None,
            epochs_explicit="epochs" in options or config is not None,
            tensorboard=board,
            on_epoch=on_epoch,
        )
    finally:
        if bar is not None:
            bar.close()
    run.finish(report, say)
    in_channels = int(slices[0].image.shape[0])
    return Model(
        _networks(cfg, in_channels, run.state_dicts(), device), {**run.meta, "name": "paulow_model"}, device
    )


def finetune(
    model: Model,
    images: Sequence[ArrayOrPath] | ArrayOrPath,
    masks: Sequence[ArrayOrPath] | ArrayOrPath,
    *,
    time_limit: float | None = 5,
    holdout: float = 0.25,
    device: str | None = None,
    freeze_encoder: bool = False,
    report_dir: str | Path | None = None,
    echo: Echo | None = None,
    tensorboard: str | Path | None = None,
    on_epoch: OnEpoch | None = None,
    verbose: bool = True,
    labelled: Sequence[np.ndarray | None] | None = None,
    **options: Any,
) -> Model:
    """Adapt a model to new images, as `finetune_model.py` does: the parent's settings at a tenth
    of its learning rate, at most 20 epochs, starting from its selected member.

    A share (`holdout`) of the images is held out and a share of the rest validates (it chooses the
    epoch, threshold and smallest object size); the parent's Dice on the held-out images (at its own
    threshold) and the new model's (at the threshold chosen on validation, unless `threshold` is
    given) are in `new.meta["metrics"]["finetune"]` (see `paulow.training.finetuning.score_note`).
    `options`: the training options that do not change the network (`threshold`,
    `augment`/`no_augment`, `rotate`/`no_rotate`, `schedule`, `gamma`, `lr`, `epochs`,
    `batch_size`, `patch`, `overlap`, `loss`, `loss_args`, `seed`, `patience`, `per_epoch`, ...);
    `width`, `depth`, `arch`, `norm`, `classes`, `folds`, `ensemble`, ... (other than the parent's own
    values) and unknown names are a `UsageError`. The parent is not changed. `report_dir`: the fit's
    history, panels and curves; `tensorboard`: a folder for TensorBoard event files; `on_epoch`: as
    for `train` (`folds` is 1); `verbose`: as for `train`; `labelled`: sparse labels, as for
    `train` (the held-out scores count the labelled pixels only; the smallest object size stays the
    parent's, as strokes are not whole objects).
    """
    from .data import check_channels
    from .training.finetune_config import finetune_config
    from .training.finetuning import (
        finetune_network,
        finetuned_meta,
        split_for_finetuning,
        start_member,
    )
    from .watch import FoldWatch

    device = device or model.device
    cfg = finetune_config(
        model.meta, {**options, "time_limit": time_limit or 0, "freeze_encoder": freeze_encoder}, device
    )
    from .context import add_context, model_context

    slices = add_context(
        make_slices(
            images, masks, cfg.mask_classes(), model.meta.get("normalisation"), cfg.palette, labelled
        ),
        model_context(model.meta),
    )
    if cfg.boundary_target:  # a boundary model learns the 3-class target of the masks' instances
        from .boundaries import with_boundary_targets

        slices = with_boundary_targets(slices, cast(int, cfg.boundary_target))  # a saved model's width
    check_channels(slices, model.in_channels, "the model being fine-tuned")
    tune, val, held = split_for_finetuning(slices, holdout, cfg.seed, "the images passed to paulow.finetune")
    parent = start_member(model.networks, model.meta)
    report, board = Path(report_dir) if report_dir else None, _tensorboard(tensorboard)
    watch = (
        FoldWatch(report / "curves.png" if report else None, "fine-tuning", board)
        if report or board
        else None
    )
    say, on_epoch, bar = progress(verbose, echo, on_epoch, "fine-tuning")
    try:
        done = finetune_network(
            parent, tune, val, cfg, device, report, say, watch, model.meta, on_epoch, held
        )
    finally:
        if bar is not None:
            bar.close()
    name = f"{model.meta.get('name') or 'paulow_model'}_finetuned"
    return Model(
        [done.network],
        finetuned_meta(model.meta, name, done, {"name": model.meta.get("name")}, slices),
        device,
    )


def evaluate(
    pred: Prediction | np.ndarray, truth: np.ndarray, *, classes: int | None = None, iou: float = 0.5
) -> dict[str, float]:
    """Scores of a prediction of any model against a ground-truth mask (`paulow.prediction_scores`).

    Binary and boundary models: any truth whose non-zero pixels are the objects (0/1, 0/255,
    instance labels); pixel scores (dice, iou, precision, recall, accuracy, miou, mpa) of the mask
    (a boundary model's object mask: its "object Dice") and object scores prefixed `object_`
    (instances matched one-to-one at IoU >= `iou`); a boundary model adds `class_mean_dice` and
    `class_dice_<background|interior|boundary>`. `classes` > 1 (default: a class model's K):
    class-index truth, per-class scores.
    """
    from .prediction_scores import score_prediction

    return score_prediction(pred, truth, classes, iou)


__all__ = ["Model", "Prediction", "TrainConfig", "train", "finetune", "load_model", "evaluate", "make_slices"]

"""A trained model (one network or an ensemble, with its metadata): predict, save, export, load."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from ..errors import UsageError
from .inputs import ArrayOrPath, _stack_and_name
from .prediction import Prediction, predictions_from

Echo = Callable[[str], None]
OnTile = Callable[[int, int, int], None]


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
        from ..model_file import stored_threshold

        return stored_threshold(self.meta)

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
        from ..multi_file import PreparedImage
        from ..predict import predict_pages

        prepared = image if isinstance(image, PreparedImage) else None  # read + normalised already
        if prepared is not None:
            stack, name = prepared.data, str(prepared.path)
        else:
            stack, name = _stack_and_name(image, axes)
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
        return predictions_from(self.meta, probs, stack, threshold, min_size)

    def predict_files(self, paths: Sequence[str | Path], **options: Any):
        """Yield `(path, predict_stack(path, **options))` for each file in order; the next file is
        read and normalised in a background thread while the network works (`paulow.multi_file`)."""
        from ..multi_file import predict_files

        return predict_files(self, paths, **options)

    def segment_files(self, paths: Sequence[str | Path], out_dir: str | Path, **options: Any) -> list[Path]:
        """Write `<stem>_mask.tif` into `out_dir` for each file (free names, nothing overwritten), the
        next file read and the previous mask written in background threads; the written paths in
        input order. Options as `predict_stack`."""
        from ..multi_file import segment_files

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
        from ..device_probe import probe

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
        from ..chunked_run import predict_file
        from ..dask_runner import TaskRunner

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
        from ..checkpoint import save_checkpoint

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

        from ..checkpoint import save_checkpoint
        from ..export import export_model

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
    from ..checkpoint import load_checkpoint

    loaded = load_checkpoint(Path(path), device)
    return Model(loaded.models, {**loaded.meta, "name": loaded.meta.get("name") or Path(path).stem}, device)


def list_models(folder: str | Path) -> list[dict]:
    """One row per readable model file in `folder` (e.g. `Use_Model/saved_models`), newest first: name,
    path, classes, target, tile, threshold, smallest object and scores (`paulow.model_catalog`)."""
    from ..model_catalog import list_models as rows

    return rows(folder)


def model_summary(path: str | Path) -> dict:
    """The `list_models` row of one model file (reads its metadata only)."""
    from ..model_catalog import model_summary as row

    return row(path)

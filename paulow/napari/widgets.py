"""The dock widgets: Segment, Train / fine-tune and Attention maps (magicgui containers).

Each widget checks its inputs at once (an `error: ...` line in its status, nothing started), then runs
its job (see `jobs`) in a napari `thread_worker`, so the viewer stays responsive; `worker` holds the
running one.
"""

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import napari
import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Labels, Layer
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from psygnal import Signal

import paulow.api

from ..errors import Cancelled, PaulowError
from . import jobs
from .layers import image_pages, page_index, sparse_training_pairs, summary_line, training_pairs

log = logging.getLogger("paulow")
INSTANCES, MASK = "instances (one label per object)", "mask (class per pixel)"


def _path(edit: FileEdit) -> Path | None:
    """A single-file FileEdit's value (only the multi-file mode gives a tuple)."""
    return cast("Path | None", edit.value)


class _LayerWidget(Container):
    """Shared parts: layer pickers that follow the viewer, a progress bar, a status line, the worker."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self.worker: Any = None  # the running napari thread worker
        self._progress = ProgressBar(value=0, max=1, label="progress")
        self._status = Label(value="", label="status")
        self._status.native.setWordWrap(True)  # errors name the file and the fix: long lines

    def _layer_picker(self, kind: type[Layer], label: str) -> ComboBox:
        picker = ComboBox(
            label=label,
            choices=lambda _: [
                (layer.name, layer) for layer in self._viewer.layers if isinstance(layer, kind)
            ],
        )
        for event in (self._viewer.layers.events.inserted, self._viewer.layers.events.removed):
            event.connect(lambda _=None: picker.reset_choices())
        return picker

    def _say(self, message: str) -> None:
        self._status.value = message

    def _update(self, update: jobs.Update) -> None:
        self._say(update.message)
        if update.total:
            self._progress.max, self._progress.value = update.total, update.done

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            return self._say(f"cancelled: {exc}")
        # PAULow's own errors name the fix; anything else is a bug, so its type is shown too
        message = str(exc) if isinstance(exc, PaulowError) else f"{type(exc).__name__}: {exc}"
        self._say(f"error: {message}")
        show_error(f"PAULow: {message}")
        log.error("napari %s: %s", type(self).__name__, message)

    def _start(self, job: Callable, *args: Any, on_done: Callable[[Any], None], **kwargs: Any) -> None:
        """Run `job` in a worker thread: updates to the progress bar and status, errors to the status."""
        self._run.enabled = False
        self._progress.value = 0
        worker = thread_worker(job, start_thread=False, ignore_errors=True)(*args, **kwargs)
        if hasattr(worker, "yielded"):
            worker.yielded.connect(self._update)
        worker.returned.connect(on_done)
        worker.errored.connect(self._failed)
        worker.finished.connect(lambda: setattr(self._run, "enabled", True))
        self.worker = worker
        worker.start()

    def _image_and_model(self) -> tuple[Any, Path] | None:
        """The chosen image layer and model file; None (and the reason in the status) when missing."""
        layer = self._image.value
        if layer is None:
            self._say("error: no image layer: open an image first")
            return None
        try:
            return layer, jobs.model_file(self._model.value)
        except PaulowError as exc:
            self._say(f"error: {exc}")
            return None

    def _place(self, source, ndim: int) -> dict:
        """Scale and translate so a new layer lies on `source` (its last `ndim` axes)."""
        return {"scale": tuple(source.scale)[-ndim:], "translate": tuple(source.translate)[-ndim:]}


class _ModelEvents:
    """Across widgets: a model was saved (its path, and whether it should become the current one)."""

    saved = Signal(object, bool)


MODELS = _ModelEvents()


class SegmentWidget(_LayerWidget):
    """Segment the chosen image layer with a saved model: a labels layer (and probabilities) out.

    The probabilities are kept: the threshold and smallest-object controls re-label at once, without
    the network. Models saved by the Train widget appear in the picker (a better one is chosen)."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.result: jobs.Segmentation | None = None
        self._labels_layer: Labels | None = None
        self._image = self._layer_picker(Image, "image")
        self._model = FileEdit(label="model file", mode=FileDialogMode.EXISTING_FILE, filter="*.pth")
        self._models = ComboBox(label="saved models", choices=self._model_choices)
        self._models.changed.connect(self._picked)
        self._info = Label(value="", label="model")
        self._info.native.setWordWrap(True)
        self._model.changed.connect(self._model_changed)
        self._output = ComboBox(label="output", choices=[MASK, INSTANCES], value=MASK)
        self._split = CheckBox(text="split touching objects (watershed)", value=False)
        self._probabilities = CheckBox(text="add a probability layer", value=False)
        self._threshold = FloatSlider(
            label="threshold", value=0.5, min=0.0, max=1.0, step=0.01, enabled=False
        )
        self._min_size = SpinBox(label="smallest object (px)", value=0, min=0, max=10_000_000, enabled=False)
        for control in (self._threshold, self._min_size):
            control.changed.connect(self._relabel)
        self._run = PushButton(text="Segment")
        self._run.changed.connect(self.run)
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._cancel.changed.connect(self.cancel)
        self._stop = threading.Event()
        MODELS.saved.connect(self._model_saved)
        self.extend(
            [
                self._image,
                self._model,
                self._models,
                self._info,
                self._output,
                self._split,
                self._probabilities,
                self._run,
                self._cancel,
                self._threshold,
                self._min_size,
                self._progress,
                self._status,
            ]
        )

    # ------------------------------------------------------------ the model picker
    def _folder(self) -> Path | None:
        chosen = jobs._given(_path(self._model))
        if chosen is None:
            return None
        return chosen if chosen.is_dir() else chosen.parent

    def _model_choices(self, _=None) -> list[tuple[str, Path]]:
        folder = self._folder()
        return (
            []
            if folder is None
            else [(summary_line(row), row["path"]) for row in paulow.api.list_models(folder)]
        )

    def _model_changed(self, _=None) -> None:
        chosen = jobs._given(_path(self._model))
        with self._models.changed.blocked():  # listing the folder must not change the chosen file
            self._models.reset_choices()
            if chosen in self._models.choices:
                self._models.value = chosen
        try:
            self._info.value = (
                ""
                if chosen is None or not chosen.is_file()
                else summary_line(paulow.api.model_summary(chosen))
            )
        except PaulowError as exc:
            self._info.value = f"error: {exc}"

    def _picked(self, path: Path | None) -> None:
        if path is not None and jobs._given(_path(self._model)) != Path(path):
            self._model.value = path

    def _model_saved(self, path: Path, make_current: bool) -> None:
        if make_current or self._folder() is None:
            self._model.value = path
        self._model_changed()

    # ------------------------------------------------------------ segmenting
    def run(self) -> None:
        chosen = self._image_and_model()
        if chosen is None:
            return
        layer, path = chosen
        instances = self._output.value == INSTANCES
        self._stop.clear()
        self._cancel.enabled = True
        self._start(
            jobs.segment,
            path,
            layer.data,
            bool(layer.rgb),
            instances=instances,
            split_touching=self._split.value,
            probabilities=self._probabilities.value,
            cancel=self._stop,
            on_done=lambda result: self._add(layer, path, result),
        )
        self.worker.finished.connect(lambda: setattr(self._cancel, "enabled", False))

    def cancel(self) -> None:
        """Stop the running segmentation at its next batch of tiles; nothing is added."""
        self._stop.set()
        self._say("cancelling ...")

    def _add(self, source, path: Path, result: jobs.Segmentation) -> None:
        kind = "instances" if result.instances else "mask"
        self.result = result
        self._labels_layer = self._viewer.add_labels(
            result.labels, name=f"{source.name} {kind}", **self._place(source, result.labels.ndim)
        )
        if result.probabilities is not None:
            place = self._place(source, result.labels.ndim)
            extra = result.probabilities.ndim - result.labels.ndim  # a class axis first, for class maps
            place = {k: (1,) * extra + v if k == "scale" else (0,) * extra + v for k, v in place.items()}
            # one foreground channel (a boundary model's 1 - P(background)), over the image, not added to it
            self._viewer.add_image(
                result.probabilities,
                name=f"{source.name} probability",
                colormap="viridis",
                contrast_limits=(0.0, 1.0),
                blending="translucent",
                opacity=0.5,
                **place,
            )
        with self._threshold.changed.blocked(), self._min_size.changed.blocked():
            self._threshold.value, self._min_size.value = result.threshold, result.min_size
        first = result.predictions[0]  # class maps are the argmax: no threshold, no smallest object
        self._threshold.enabled = self._min_size.enabled = first.boundary or first.probabilities.shape[0] == 1
        self._say(self._done_line(path.name, result))

    def _done_line(self, name: str, result: jobs.Segmentation) -> str:
        found = f", {int(result.labels.max())} object(s)" if result.instances else ""
        return f"done: {name}, threshold {result.threshold:.2f}, smallest object {result.min_size} px{found}"

    def _relabel(self, _=None) -> None:
        """Re-threshold and re-filter the kept probabilities into the same labels layer, at once."""
        if self.result is None or self._labels_layer is None or self._labels_layer not in self._viewer.layers:
            return
        self.result = jobs.relabel(self.result, self._threshold.value, self._min_size.value)
        self._labels_layer.data = self.result.labels
        self._say(self._done_line("re-thresholded", self.result))


class TrainWidget(_LayerWidget):
    """Train a new model, or fine-tune a saved one, from an image layer and its labels layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.train_options: dict[str, Any] = {}  # more TrainConfig fields (e.g. per_epoch) for the next run
        self._image = self._layer_picker(Image, "image")
        self._labels_in = self._layer_picker(Labels, "labels")
        self._classes = CheckBox(text="labels are classes (else any label is foreground)", value=False)
        self._sparse = CheckBox(
            text="sparse: unpainted pixels are ignored",
            value=False,
            tooltip="paint corrections only where they matter: label 0 (unpainted) is ignored by the loss",
        )
        self._convention = Label(value="", visible=False)
        self._convention.native.setWordWrap(True)
        self._sparse.changed.connect(self._show_convention)
        self._classes.changed.connect(self._show_convention)
        self._finetune = CheckBox(text="fine-tune a saved model", value=False)
        self._parent_in = FileEdit(
            label="model to fine-tune", mode=FileDialogMode.EXISTING_FILE, filter="*.pth", visible=False
        )
        self._finetune.changed.connect(lambda on: setattr(self._parent_in, "visible", on))
        self._minutes = FloatSpinBox(
            label="time limit (min, 0: epochs)", value=5.0, min=0.0, max=1440.0, step=0.5
        )
        self._epochs = SpinBox(label="epochs", value=40, min=1, max=10000)
        self._width = SpinBox(label="network width", value=16, min=4, max=128)
        self._patch = SpinBox(label="patch size", value=128, min=32, max=1024, step=16)
        self._tiles = SpinBox(
            label="tiles per side",
            value=2,
            min=1,
            max=8,
            tooltip="each image is cut into tiles x tiles pieces so some can be held out for validation",
        )
        self._out = FileEdit(label="save model as", mode=FileDialogMode.OPTIONAL_FILE, filter="*.pth")
        self._run = PushButton(text="Train")
        self._run.changed.connect(self.run)
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._cancel.changed.connect(self.cancel)
        self._stop = threading.Event()
        self.extend(
            [
                self._image,
                self._labels_in,
                self._classes,
                self._sparse,
                self._convention,
                self._finetune,
                self._parent_in,
                self._minutes,
                self._epochs,
                self._width,
                self._patch,
                self._tiles,
                self._out,
                self._run,
                self._cancel,
                self._progress,
                self._status,
            ]
        )

    def _show_convention(self, _=None) -> None:
        """The sparse labels' convention, under the check box while it is on."""
        things = "class 1, 2, ..." if self._classes.value else "objects (each label its own object)"
        self._convention.value = f"label 1 = background, labels 2, 3, ... = {things}; 0 = not labelled"
        self._convention.visible = bool(self._sparse.value)

    def _pairs(self, image: Image, labels: Labels) -> tuple[list, list, list | None]:
        """(images, masks, labelled pixels or None) from the layers, cut into tiles."""
        rgb, tiles = bool(image.rgb), self._tiles.value
        if self._sparse.value:
            return sparse_training_pairs(image.data, labels.data, rgb, tiles, bool(self._classes.value))
        return (*training_pairs(image.data, labels.data, rgb, tiles), None)

    def run(self) -> None:
        image, labels = self._image.value, self._labels_in.value
        if image is None or labels is None:
            return self._say("error: choose an image layer and a labels layer drawn on it")
        try:
            images, masks, labelled = self._pairs(image, labels)
            base = jobs.model_file(_path(self._parent_in)) if self._finetune.value else None
            out = jobs.output_file(_path(self._out))
        except PaulowError as exc:
            return self._say(f"error: {exc}")
        if not images or (labelled is None and not any(m.any() for m in masks)):
            return self._say(f"error: the labels layer '{labels.name}' is empty: paint some objects first")
        if base is not None and len(images) < 2:
            fix = "set 'tiles per side' to 2 or more"
            if labelled is not None and self._tiles.value > 1:
                fix = f"paint in at least two of the image's {self._tiles.value}x{self._tiles.value} tiles"
            return self._say(f"error: fine-tuning holds part of the image out: {fix}")
        classes = int(max(m.max(initial=0) for m in masks)) + 1 if self._classes.value else 1
        options = {"patch": self._patch.value, "overlap": self._patch.value // 2, **self.train_options}
        if base is None:
            options = {"width": self._width.value, "folds": 1, "test_fraction": 0.0, **options}
        self._stop.clear()
        self._cancel.enabled = True
        self._start(
            jobs.train,
            images,
            masks,
            out,
            base=base,
            time_limit=self._minutes.value,
            epochs=self._epochs.value,
            classes=classes,
            cancel=self._stop,
            labelled=labelled,
            on_done=self._saved,
            **options,
        )
        self.worker.finished.connect(lambda: setattr(self._cancel, "enabled", False))

    def cancel(self) -> None:
        """Stop the run at its next epoch or progress line; nothing is saved."""
        self._stop.set()
        self._say("cancelling ...")

    def _saved(self, result: jobs.Trained) -> None:
        """Say where the model went; a fine-tuned model worse than its parent on the held-out pixels is
        said to be so and not made the Segment widget's current model (it is listed there to choose)."""
        self._progress.max, self._progress.value = 1, 1
        if result.worse_than_parent:
            self._say(
                f"saved {result.path}, but it scores worse than its parent on the held-out pixels "
                f"(Dice {result.finetuned_dice:.3f} < {result.parent_dice:.3f}): the parent stays the "
                "current model; choose this one in Segment's model list to use it anyway"
            )
        else:
            scores = (
                ""
                if result.finetuned_dice is None
                else f" (held-out Dice {result.finetuned_dice:.3f}, parent {result.parent_dice:.3f})"
            )
            self._say(f"saved {result.path}{scores}")
        MODELS.saved.emit(result.path, not result.worse_than_parent)


class AttentionWidget(_LayerWidget):
    """Show where a model's attention gates look, for the image's current slice."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self._image = self._layer_picker(Image, "image")
        self._model = FileEdit(label="model file", mode=FileDialogMode.EXISTING_FILE, filter="*.pth")
        self._run = PushButton(text="Show attention maps")
        self._run.changed.connect(self.run)
        self.extend([self._image, self._model, self._run, self._progress, self._status])

    def run(self) -> None:
        chosen = self._image_and_model()
        if chosen is None:
            return
        layer, path = chosen
        pages, shape = image_pages(layer.data, bool(layer.rgb))
        index = page_index(layer.world_to_data(self._viewer.dims.point), shape)
        self._say(f"attention maps of {path.name} for page {index + 1}/{len(pages)}")
        self._start(
            jobs.attention, path, np.asarray(pages[index]), on_done=lambda maps: self._add(layer, maps)
        )

    def _add(self, source, maps: list[np.ndarray]) -> None:
        names = [
            f"{source.name} attention gate {i + 1}" + (" (deepest)" if i == 0 else "")
            for i in range(len(maps))
        ]
        self._viewer.add_image(
            np.stack(maps),
            channel_axis=0,
            name=names,
            colormap="inferno",
            blending="additive",
            contrast_limits=(0.0, 1.0),
            visible=[True] + [False] * (len(maps) - 1),
            **self._place(source, 2),
        )
        self._progress.max, self._progress.value = 1, 1
        self._say(f"{len(maps)} gate map(s), deepest first: bright = detail let through")

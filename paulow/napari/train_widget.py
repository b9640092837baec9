"""The Train / fine-tune dock widget: a new or fine-tuned model from an image layer and its labels."""

import threading
from typing import Any

import napari
from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, FileEdit, FloatSpinBox, Label, PushButton, SpinBox
from napari.layers import Image, Labels

from paulow.api import PaulowError

from . import jobs
from .layers import sparse_training_pairs, training_pairs
from .widget_base import MODELS, LayerWidget, chosen_path


class TrainWidget(LayerWidget):
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
        self._minutes, self._epochs, self._width, self._patch, self._tiles = self._settings()
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

    @staticmethod
    def _settings() -> tuple[FloatSpinBox, SpinBox, SpinBox, SpinBox, SpinBox]:
        """The run's settings: time limit, epochs, network width, patch size and tiles per side."""
        tiles = "each image is cut into tiles x tiles pieces so some can be held out for validation"
        return (
            FloatSpinBox(label="time limit (min, 0: epochs)", value=5.0, min=0.0, max=1440.0, step=0.5),
            SpinBox(label="epochs", value=40, min=1, max=10000),
            SpinBox(label="network width", value=16, min=4, max=128),
            SpinBox(label="patch size", value=128, min=32, max=1024, step=16),
            SpinBox(label="tiles per side", value=2, min=1, max=8, tooltip=tiles),
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
            base = jobs.model_file(chosen_path(self._parent_in)) if self._finetune.value else None
            out = jobs.output_file(chosen_path(self._out))
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

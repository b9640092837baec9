"""The Segment dock widget: a saved model on an image layer, re-thresholded at once from the kept
probabilities."""

import threading
from pathlib import Path

import napari
from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSlider, Label, PushButton, SpinBox
from napari.layers import Image, Labels

import paulow.api
from paulow.api import PaulowError

from . import jobs
from .layers import summary_line
from .widget_base import MODELS, LayerWidget, chosen_path

INSTANCES, MASK = "instances (one label per object)", "mask (class per pixel)"


class SegmentWidget(LayerWidget):
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
        chosen = jobs._given(chosen_path(self._model))
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
        chosen = jobs._given(chosen_path(self._model))
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
        if path is not None and jobs._given(chosen_path(self._model)) != Path(path):
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

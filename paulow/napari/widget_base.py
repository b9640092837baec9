"""What the dock widgets share: layer pickers that follow the viewer, a progress bar, a status line
and the running worker; and `MODELS`, the signal that a model was saved."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar
from napari.layers import Layer
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from psygnal import Signal

from paulow.api import Cancelled, PaulowError

from . import jobs

log = logging.getLogger("paulow")


def chosen_path(edit: FileEdit) -> Path | None:
    """A single-file FileEdit's value (only the multi-file mode gives a tuple)."""
    return cast("Path | None", edit.value)


class LayerWidget(Container):
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

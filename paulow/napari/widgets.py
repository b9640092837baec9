"""The dock widgets: Segment, Train / fine-tune and Attention maps (magicgui containers).

Each widget checks its inputs at once (an `error: ...` line in its status, nothing started), then runs
its job (see `jobs`) in a napari `thread_worker`, so the viewer stays responsive; `worker` holds the
running one.
"""

import napari
import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import FileEdit, PushButton
from napari.layers import Image

from . import jobs
from .layers import image_pages, page_index
from .segment_widget import INSTANCES, MASK, SegmentWidget
from .train_widget import TrainWidget
from .widget_base import MODELS, LayerWidget

__all__ = ["INSTANCES", "MASK", "MODELS", "AttentionWidget", "SegmentWidget", "TrainWidget"]


class AttentionWidget(LayerWidget):
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

"""The public Python API: train, predict, save, load, fine-tune and evaluate from arrays or files.

No prompts, no drop folders; progress (lines and a `tqdm.auto` bar) unless `verbose=False`::

    import paulow
    model = paulow.train(images, masks, time_limit=10)
    pred = model.predict(image)
    labels = pred.labels(split_touching=True)
"""

from ..config import TrainConfig
from .fitting import finetune, train
from .inputs import ArrayOrPath, make_slices
from .model import Model, list_models, load_model, model_summary
from .napari_support import (
    Cancelled,
    PaulowError,
    ShapeMismatchError,
    UsageError,
    Volume,
    attention_maps,
    is_volume,
    open_volume,
)
from .prediction import Prediction
from .scores import evaluate

__all__ = [
    "ArrayOrPath",
    "Cancelled",
    "Model",
    "PaulowError",
    "Prediction",
    "ShapeMismatchError",
    "TrainConfig",
    "UsageError",
    "Volume",
    "attention_maps",
    "evaluate",
    "finetune",
    "is_volume",
    "list_models",
    "load_model",
    "make_slices",
    "model_summary",
    "open_volume",
    "train",
]

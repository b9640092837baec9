"""The public Python API: train, predict, save, load, fine-tune and evaluate from arrays or files.

No prompts, no drop folders; progress (lines and a `tqdm.auto` bar) unless `verbose=False`::

    import paulow
    model = paulow.train(images, masks, time_limit=10)
    pred = model.predict(image)
    labels = pred.labels(split_touching=True)
"""

from ..config import TrainConfig
from .finetune_run import (
    FinetunePlan,
    Finetuning,
    finetune_settings,
    fit_finetune,
    free_model_path,
    holdout_share,
    load_parent,
    parent_identity,
    plan_finetune,
    read_finetune_folders,
    require_one_process,
    save_finetuned,
)
from .fitting import finetune, train
from .inputs import ArrayOrPath, make_slices
from .model import Model, list_models, load_model, model_summary
from .prediction import Prediction
from .scores import evaluate

__all__ = [
    "ArrayOrPath",
    "FinetunePlan",
    "Finetuning",
    "Model",
    "Prediction",
    "TrainConfig",
    "evaluate",
    "finetune",
    "finetune_settings",
    "fit_finetune",
    "free_model_path",
    "holdout_share",
    "list_models",
    "load_model",
    "load_parent",
    "make_slices",
    "model_summary",
    "parent_identity",
    "plan_finetune",
    "read_finetune_folders",
    "require_one_process",
    "save_finetuned",
    "train",
]

"""The public Python API: train, predict, save, load, fine-tune and evaluate from arrays or files.

No prompts, no drop folders; progress (lines and a `tqdm.auto` bar) unless `verbose=False`::

    import paulow
    model = paulow.train(images, masks, time_limit=10)
    pred = model.predict(image)
    labels = pred.labels(split_touching=True)
"""

from ..config import TrainConfig
from .evaluate_run import EvaluationRun, class_scores, evaluate_run, score_masks, write_evaluation
from .files import (
    image_pairs,
    read_image,
    read_mask,
    synthetic_image,
    write_image,
    write_mask,
    write_synthetic_dataset,
)
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
from .tools import (
    InputResult,
    NetworkSummary,
    OverfitResult,
    export_model_file,
    find_inputs,
    network_summary,
    overfit_one_batch,
    pick_device,
    predict_inputs,
    training_pairs,
    use_threads,
)

__all__ = [
    "ArrayOrPath",
    "Cancelled",
    "EvaluationRun",
    "FinetunePlan",
    "Finetuning",
    "InputResult",
    "Model",
    "NetworkSummary",
    "OverfitResult",
    "PaulowError",
    "Prediction",
    "ShapeMismatchError",
    "TrainConfig",
    "UsageError",
    "Volume",
    "attention_maps",
    "class_scores",
    "evaluate",
    "evaluate_run",
    "export_model_file",
    "find_inputs",
    "finetune",
    "finetune_settings",
    "fit_finetune",
    "free_model_path",
    "holdout_share",
    "image_pairs",
    "is_volume",
    "list_models",
    "load_model",
    "load_parent",
    "make_slices",
    "model_summary",
    "network_summary",
    "open_volume",
    "overfit_one_batch",
    "parent_identity",
    "pick_device",
    "plan_finetune",
    "predict_inputs",
    "read_finetune_folders",
    "read_image",
    "read_mask",
    "require_one_process",
    "save_finetuned",
    "score_masks",
    "synthetic_image",
    "train",
    "training_pairs",
    "use_threads",
    "write_evaluation",
    "write_image",
    "write_mask",
    "write_synthetic_dataset",
]

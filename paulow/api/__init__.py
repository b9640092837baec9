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
from .prediction import Prediction
from .scores import evaluate
from .training_inputs import fit, folder_config, folder_slices, names_from_file, network_slices, run_palette
from .training_run import (
    RunFiles,
    StoppedRun,
    TrainedModel,
    TrainingInputs,
    TrainingRequest,
    name_training_run,
    read_training_inputs,
    run_files,
    settle_finished_runs,
    start_training,
    stopped_run,
    train_and_save,
)
from .workspace_run import (
    MAX_NAME,
    check_model_name,
    describe_model,
    free_folder,
    given_training_options,
    read_input_fingerprints,
    require_tensorboard,
    training_config,
    workspace_lock,
)

__all__ = [
    "ArrayOrPath",
    "MAX_NAME",
    "Model",
    "Prediction",
    "RunFiles",
    "StoppedRun",
    "TrainConfig",
    "TrainedModel",
    "TrainingInputs",
    "TrainingRequest",
    "check_model_name",
    "describe_model",
    "evaluate",
    "finetune",
    "fit",
    "folder_config",
    "folder_slices",
    "free_folder",
    "given_training_options",
    "list_models",
    "load_model",
    "make_slices",
    "model_summary",
    "name_training_run",
    "names_from_file",
    "network_slices",
    "read_input_fingerprints",
    "read_training_inputs",
    "require_tensorboard",
    "run_files",
    "run_palette",
    "settle_finished_runs",
    "start_training",
    "stopped_run",
    "train",
    "train_and_save",
    "training_config",
    "workspace_lock",
]

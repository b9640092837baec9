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
from .segment_folder import (
    RunRecord,
    folder_inputs,
    gather_results,
    is_main,
    load_for_segmenting,
    main_first,
    on_main,
    other_processes,
    require_runs_folder,
    settle_run,
    start_processes,
    unfinished_outputs,
    write_tables,
)
from .segment_run import (
    FileResult,
    SegmentOptions,
    boundary_hint,
    choose_folder_settings,
    class_names,
    predict_pages_of,
    read_input,
    segment_all,
    segment_file,
)

__all__ = [
    "ArrayOrPath",
    "FileResult",
    "Model",
    "Prediction",
    "RunRecord",
    "SegmentOptions",
    "TrainConfig",
    "boundary_hint",
    "choose_folder_settings",
    "class_names",
    "evaluate",
    "finetune",
    "folder_inputs",
    "gather_results",
    "is_main",
    "list_models",
    "load_for_segmenting",
    "load_model",
    "main_first",
    "make_slices",
    "model_summary",
    "on_main",
    "other_processes",
    "predict_pages_of",
    "read_input",
    "require_runs_folder",
    "segment_all",
    "segment_file",
    "settle_run",
    "start_processes",
    "train",
    "unfinished_outputs",
    "write_tables",
]

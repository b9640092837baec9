"""Old home of the training code, now `paulow.training` (re-exported here for old imports)."""

from .config import PRESETS, TrainConfig, resolve_config  # noqa: F401
from .device import pick_device  # noqa: F401
from .training.cross_validation import (  # noqa: F401
    _Budget as _Budget,
)
from .training.cross_validation import (
    _fewer_threads_when_busy as _fewer_threads_when_busy,
)
from .training.cross_validation import (
    cross_validate as cross_validate,
)
from .training.cross_validation import (
    plan_splits as plan_splits,
)
from .training.epoch import (
    ValidationPacer as ValidationPacer,
)
from .training.epoch import (  # noqa: F401
    _loader as _loader,
)
from .training.evaluation import (
    between_epoch_slices as between_epoch_slices,
)
from .training.evaluation import (
    dice_by_threshold as dice_by_threshold,
)
from .training.evaluation import (
    dice_on_slices as dice_on_slices,
)
from .training.evaluation import (  # noqa: F401
    predict_slices as predict_slices,
)
from .training.evaluation import (
    scores_on_slices as scores_on_slices,
)
from .training.evaluation import (
    validation_probabilities as validation_probabilities,
)
from .training.loop import (  # noqa: F401
    fit_fold as fit_fold,
)
from .training.metadata import (  # noqa: F401
    training_meta as training_meta,
)
from .training.network import (
    _labelled_pixels as _labelled_pixels,
)
from .training.network import (
    build_network as build_network,
)
from .training.network import (
    freeze_encoder as freeze_encoder,
)
from .training.network import (  # noqa: F401
    loss_options as loss_options,
)
from .training.network import (
    output_activation as output_activation,
)
from .training.planning import (
    count_tiles as count_tiles,
)
from .training.planning import (
    plan_run as plan_run,
)
from .training.planning import (
    time_inference as time_inference,
)
from .training.planning import (  # noqa: F401
    time_steps as time_steps,
)
from .training.results import (
    FoldResult as FoldResult,
)
from .training.results import (
    TrainResult as TrainResult,
)
from .training.results import (  # noqa: F401
    masks_of as masks_of,
)
from .training.schedules import (
    SCHEDULES as SCHEDULES,
)
from .training.schedules import (
    ConstantRate as ConstantRate,
)
from .training.schedules import (
    StepDecay as StepDecay,
)
from .training.schedules import (  # noqa: F401
    WarmupCosine as WarmupCosine,
)
from .training.schedules import (
    make_optimizer as make_optimizer,
)
from .training.schedules import (
    make_schedule as make_schedule,
)
from .training.state import (
    ProgressSaver as ProgressSaver,
)
from .training.state import (  # noqa: F401
    _cpu_state as _cpu_state,
)
from .training.state import (
    fold_from_state as fold_from_state,
)
from .training.state import (
    fold_state as fold_state,
)
from .training.state import (
    run_state as run_state,
)
from .training.timing import (  # noqa: F401
    TIMING_KEYS as TIMING_KEYS,
)
from .training.timing import (
    new_timing as new_timing,
)
from .training.timing import (
    timed as timed,
)
from .training.tuning import (
    closing_validations as closing_validations,
)
from .training.tuning import (
    predicted_objects as predicted_objects,
)
from .training.tuning import (
    score_test as score_test,
)
from .training.tuning import (
    select_fold as select_fold,
)
from .training.tuning import (
    tune_on_probabilities as tune_on_probabilities,
)
from .training.tuning import (  # noqa: F401
    tune_threshold as tune_threshold,
)

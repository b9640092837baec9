"""Old home of `paulow.training.planner` (re-exported here for old imports)."""

from .training.planner import (
    EPOCH_HEADROOM as EPOCH_HEADROOM,
)
from .training.planner import (
    MAX_VALIDATIONS_PER_FOLD as MAX_VALIDATIONS_PER_FOLD,
)
from .training.planner import (  # noqa: F401
    MIN_GRADIENT_SHARE as MIN_GRADIENT_SHARE,
)
from .training.planner import (
    MIN_PATCHES_PER_FOLD as MIN_PATCHES_PER_FOLD,
)
from .training.planner import (
    SLOWDOWN_TO_REPLAN as SLOWDOWN_TO_REPLAN,
)
from .training.planner import (
    Plan as Plan,
)
from .training.planner import (
    _fold_plan as _fold_plan,
)
from .training.planner import (
    epochs_for_time as epochs_for_time,
)
from .training.planner import (
    plan_budget as plan_budget,
)
from .training.planner import (
    replan_folds as replan_folds,
)

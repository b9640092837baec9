"""Old home of `paulow.training.finetuning` and `paulow.training.finetune_config` (re-exported here
for old imports)."""

from .training.finetune_config import (
    _NETWORK as _NETWORK,
)
from .training.finetune_config import (  # noqa: F401
    FINETUNE_DEFAULTS as FINETUNE_DEFAULTS,
)
from .training.finetune_config import (
    FIXED_BY_PARENT as FIXED_BY_PARENT,
)
from .training.finetune_config import (
    _parent_values as _parent_values,
)
from .training.finetune_config import (
    finetune_config as finetune_config,
)
from .training.finetune_config import (
    refuse_fixed_options as refuse_fixed_options,
)
from .training.finetuning import (  # noqa: F401
    FEW_HELD_OUT as FEW_HELD_OUT,
)
from .training.finetuning import (
    Finetuned as Finetuned,
)
from .training.finetuning import (
    _choose_on_validation as _choose_on_validation,
)
from .training.finetuning import (
    _dice_text as _dice_text,
)
from .training.finetuning import (
    _fit_copy as _fit_copy,
)
from .training.finetuning import (
    _parent_scores as _parent_scores,
)
from .training.finetuning import (
    _scores as _scores,
)
from .training.finetuning import (
    as_evaluated as as_evaluated,
)
from .training.finetuning import (
    finetune_network as finetune_network,
)
from .training.finetuning import (
    finetuned_meta as finetuned_meta,
)
from .training.finetuning import (
    score_note as score_note,
)
from .training.finetuning import (
    split_for_finetuning as split_for_finetuning,
)
from .training.finetuning import (
    start_member as start_member,
)

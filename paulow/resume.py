"""Old home of `paulow.training.resume` (re-exported here for old imports)."""

from .training.resume import (
    FORMAT as FORMAT,
)
from .training.resume import (
    FORMAT_VERSION as FORMAT_VERSION,
)
from .training.resume import (  # noqa: F401
    RESUME_FILE as RESUME_FILE,
)
from .training.resume import (
    check_inputs as check_inputs,
)
from .training.resume import (
    find_state as find_state,
)
from .training.resume import (
    input_hashes as input_hashes,
)
from .training.resume import (
    input_key as input_key,
)
from .training.resume import (
    load_state as load_state,
)
from .training.resume import (
    resumable_runs as resumable_runs,
)
from .training.resume import (
    save_state as save_state,
)
from .training.resume import (
    settle_finished_runs as settle_finished_runs,
)
from .training.resume import (
    stopped_run_named as stopped_run_named,
)

"""Old home of `paulow.training.run` (re-exported here for old imports)."""

from .training.run import (  # noqa: F401
    Echo as Echo,
)
from .training.run import (
    TrainingRun as TrainingRun,
)
from .training.run import (
    _fmt as _fmt,
)
from .training.run import (
    _rebuild as _rebuild,
)
from .training.run import (
    count_patches as count_patches,
)
from .training.run import (
    plan as plan,
)
from .training.run import (
    print_plan as print_plan,
)
from .training.run import (
    run_training as run_training,
)
from .training.run import (
    test_line as test_line,
)
from .training.run import (
    timing_line as timing_line,
)
from .training.run import (
    timing_summary as timing_summary,
)
from .training.run import (
    write_report as write_report,
)

"""Where a chunked run's tasks execute: an embedded dask.distributed `LocalCluster` (the default),
a running cluster given by its scheduler address (`tcp://host:8786`: SLURM, LSF, Kubernetes, ...),
a `distributed.Client` passed in, or "sync" (in this thread, no dask: debugging)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("paulow")
RETRIES = 2  # a task lost with its worker runs again elsewhere


class TaskRunner:
    """Runs batches of tasks and reports each one's completion (for one progress bar)."""

    def __init__(self, scheduler: Any = None, device: str = "cpu") -> None:
        self.client = None
        self._own: list = []
        if scheduler == "sync":
            return
        from distributed import Client, LocalCluster

        if scheduler is None:
            # one worker, one task at a time: torch uses every core inside a task, and memory is one chunk
            cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
            self.client = Client(cluster)
            self._own = [self.client, cluster]
        elif isinstance(scheduler, str):
            self.client = Client(scheduler, timeout="30s")
            self._own = [self.client]
        else:
            self.client = scheduler  # a Client the caller owns

    @property
    def workers(self) -> list[str]:
        """The workers' addresses ("this process" without dask)."""
        if self.client is None:
            return ["this process"]
        return sorted(self.client.scheduler_info()["workers"])

    def shared(self, value: Any) -> Any:
        """`value` sent once to every worker (the model), to pass to tasks."""
        if self.client is None:
            return value
        return self.client.scatter(value, broadcast=True, hash=False)

    def run(self, fn: Callable, calls: Sequence[tuple], done: Callable[[], None]) -> None:
        """`fn(*args)` for every args in `calls`; `done()` after each; the first error is raised."""
        if self.client is None:
            for args in calls:
                fn(*args)
                done()
            return
        from distributed import as_completed

        futures = [self.client.submit(fn, *args, pure=False, retries=RETRIES) for args in calls]
        try:
            for future in as_completed(futures):
                future.result()
                done()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        for item in self._own:
            item.close()
        self._own = []

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Background I/O for multi-file prediction: the next file is read (and normalised) in one worker
thread and the previous file's outputs are written in another while the network works on the
current one. Results and their order are those of the sequential loop: each worker is a single
thread, so loads and writes happen in input order, and an error is raised where the sequential
loop would have raised it (a load's error when its item is reached, a write's error at the next
write or at the end).

Memory: one file ahead is held (read and normalised), besides the current one and the one being
written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def read_ahead(items: Iterable[T], load: Callable[[T], R], ahead: int = 1) -> Iterator[tuple[T, Future]]:
    """Yield `(item, future of load(item))` in order, with up to `ahead` later items loading in a
    background thread while the caller works on the current one. `future.result()` returns the
    load's value or raises its error. Loads not yet started are cancelled when the caller stops."""
    pending: deque[tuple[T, Future]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="paulow-read") as pool:
        try:
            for item in source:
                pending.append((item, pool.submit(load, item)))
                if len(pending) > ahead:
                    yield pending.popleft()
            while pending:
                yield pending.popleft()
        finally:
            for _, future in pending:
                future.cancel()


class BackgroundWriter:
    """Runs write calls one after another in a background thread. `submit` returns the call's
    future; the first failed write is raised by the next `submit` or by `close` (after every
    submitted write has run, so nothing already submitted is dropped)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paulow-write")
        self._futures: list[Future] = []

    def submit(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        self._raise_failed()
        future = self._pool.submit(write, *args, **kwargs)
        self._futures.append(future)
        return future

    def close(self) -> None:
        """Wait for every write; raise the first error among them."""
        self._pool.shutdown(wait=True)
        self._raise_failed()

    def _raise_failed(self) -> None:
        for future in self._futures:
            error = future.exception() if future.done() else None
            if error is not None:
                raise error
        self._futures = [f for f in self._futures if not f.done()]

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if error is None:
            self.close()
        else:  # the caller's error wins; still wait so no write is cut half-way
            self._pool.shutdown(wait=True)

"""How a run stops when asked to: SIGTERM and SIGHUP like Ctrl-C, and a closed stdout tolerated.

Schedulers, `kill`, `timeout` and a closed terminal send SIGTERM or SIGHUP; a background job of a
non-interactive shell ignores SIGINT, so Ctrl-C cannot reach it. Both signals raise `Stopped` (a
`KeyboardInterrupt`), so every place that handles Ctrl-C handles them the same way: the run stops,
nothing is deleted (or, while clearing, the message says exactly what was), the resume state stays,
and the exit code is 128 + the signal number (143 for SIGTERM, 129 for SIGHUP). A signal that the
parent set to be ignored (`nohup`) stays ignored.

`| head -1` closes stdout early: later output is dropped instead of aborting the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
from collections.abc import Iterator
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The process received SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
        self.name = signal.Signals(signum).name


def _stop(signum: int, _frame: Any) -> None:
    # a second signal while the run winds down ends the process at once (as the default would)
    signal.signal(signum, signal.SIG_DFL)
    raise Stopped(signum)


def exit_code(exc: BaseException) -> int:
    """128 + the signal for `Stopped`, 130 for Ctrl-C."""
    return getattr(exc, "exit_code", 130)


def how(exc: BaseException) -> str:
    """ "SIGTERM" or "Ctrl-C", for messages."""
    return getattr(exc, "name", "Ctrl-C")


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGTERM/SIGHUP raise `Stopped` and a broken stdout pipe is tolerated for the block (main thread
    only; the previous handlers and stdout come back afterwards)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in SIGNALS}
    for s, handler in before.items():
        if handler == signal.SIG_DFL:
            signal.signal(s, _stop)
    stdout = sys.stdout
    if _is_pipe(stdout):
        sys.stdout = PipeSafe(stdout)
    try:
        yield
    finally:
        if isinstance(sys.stdout, PipeSafe):
            sys.stdout.flush()
            sys.stdout = stdout
        for s, handler in before.items():
            signal.signal(s, handler)


def _is_pipe(stream: Any) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


class PipeSafe:
    """stdout whose reader went away (`| head -1`): the rest of the output goes to /dev/null."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _drop(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()
            with contextlib.suppress(BrokenPipeError):
                self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

"""`paulow <command>` and the four top-level scripts. Parsing only; heavy imports come after parsing.

Every prompt has a flag, every option can come from `--config FILE` (YAML or JSON), and errors a
user can cause print one line and exit non-zero. The parsers are in `paulow.cli_parsers` (with
`paulow.cli_training` and the argparse types of `paulow.cli_types`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from .cli_parsers import build_parser
from .cli_types import non_negative_int, positive_int, probability, tile_overlap
from .errors import InterruptedRun, PaulowError, UsageError

__all__ = [
    "ALIASES",
    "COMMANDS",
    "build_parser",
    "load_config",
    "main",
    "non_negative_int",
    "os_error_line",
    "positive_int",
    "probability",
    "script_main",
    "tile_overlap",
]

COMMANDS = ("setup", "train", "predict", "finetune", "evaluate", "summary", "check-overfit", "export", "demo")

ALIASES = {"use": "predict", "segment": "predict"}


def load_config(path: Path) -> dict:
    """Options from a YAML or JSON file (keys as on the command line, '-' or '_')."""
    if not path.is_file():
        raise UsageError(f"config file '{path}' not found: check --config")
    from .textfile import load_yaml, read_text

    text = read_text(path, "config file", "check --config")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands of levels deep
            raise UsageError(f"config file '{path}' is not valid JSON ({exc}): fix the file") from None
    else:
        data = load_yaml(text, path, "check --config")
    if not isinstance(data, dict):
        raise UsageError(f"config file '{path}' must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _apply_config(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse twice: once to find --config, then with the file's values as defaults."""
    args = parser.parse_args(argv)
    cfg_path = getattr(args, "config", None)
    if not cfg_path:
        return args
    values = load_config(cfg_path)
    sub = _subparser(parser, args.command)
    known = {a.dest for a in sub._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"config file '{cfg_path}' has unknown option(s): {', '.join(unknown)}")
    for key in ("root", "truth", "images", "masks", "palette"):
        if isinstance(values.get(key), str):
            values[key] = Path(values[key])
    sub.set_defaults(**values)
    args = parser.parse_args(argv)
    args.config_file_values = values
    return args


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("paulow")
    if not any(getattr(h, "_paulow_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._paulow_console = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    for h in logger.handlers:
        if getattr(h, "_paulow_console", False):
            h.setLevel(logging.INFO if verbose else logging.WARNING)
            h.stream = sys.stderr  # type: ignore[attr-defined]  # this call's stream (in-process reruns)
    logger.setLevel(logging.INFO)
    logger.propagate = False


COMPUTE_COMMANDS = {"train", "predict", "finetune", "evaluate", "check-overfit", "demo"}


def _dispatch(args: argparse.Namespace) -> int:
    command = ALIASES.get(args.command, args.command)
    if command in COMPUTE_COMMANDS and getattr(args, "device", None) in (None, "auto", "cpu"):
        from .device import choose_wait_policy

        # before the command imports torch; the load it sampled goes to the command's `use_threads`
        args.busy_cores = choose_wait_policy().busy
    run: Callable[..., object]  # commands return an exit code or the model they wrote
    if command == "setup":
        from .commands.setup import run
    elif command == "train":
        from .commands.train import run
    elif command == "predict" and getattr(args, "input", None):
        from .commands.predict_files import run
    elif command == "predict":
        from .commands.segment import run
    elif command == "finetune":
        from .commands.finetune import run
    elif command == "evaluate":
        from .commands.evaluate import run
    elif command == "summary":
        from .commands.tools import run_summary as run
    elif command == "check-overfit":
        from .commands.tools import run_check_overfit as run
    elif command == "export":
        from .commands.tools import run_export as run
    else:
        from .demo import run as demo

        run = partial(demo, cli_main=main)  # the demo's steps go through `main`: passed, not imported
    result = run(args)
    code = result if isinstance(result, int) else 0
    return code or (1 if getattr(args, "refused_files", 0) else 0)  # some input files were refused


def main(argv: Sequence[str] | None = None, default_root: Path | None = None) -> int:
    """Entry point of `paulow` and the scripts. Returns the exit code (a torchrun rank leaves the
    process group and exits with it, see `distributed.exit_process`)."""
    from .stopping import handled

    code = None
    try:
        with handled():  # SIGTERM/SIGHUP stop the run like Ctrl-C; `| head -1` does not abort it
            code = _run(argv, default_root)
        return code
    finally:
        if "torch.distributed" in sys.modules:  # never imports torch for commands that did not
            from . import distributed

            was_distributed = distributed.active()
            distributed.shutdown()
            if was_distributed and code is not None:
                distributed.exit_process(code)


def _run(argv: Sequence[str] | None, default_root: Path | None) -> int:
    """`main` without the process-group teardown."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(default_root or Path.cwd())
    try:
        args = _apply_config(parser, argv)
        from .options_check import check_namespace

        check_namespace(
            args,
            ALIASES.get(args.command, args.command),
            getattr(args, "config_file_values", None),
            getattr(args, "config", None),
        )
        _setup_logging(getattr(args, "verbose", False))
        return _dispatch(args)
    except InterruptedRun as exc:
        print(f"\ninterrupted: {exc}", file=sys.stderr)
        return exc.exit_code
    except PaulowError as exc:
        if not getattr(exc, "reported_by_main", False):  # under torchrun rank 0 reports it once
            print(f"error{_rank_note()}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (paulow.stopping)
        from .stopping import exit_code, how

        print(
            f"\ninterrupted ({how(exc)}): nothing was deleted; the input folders are as they were",
            file=sys.stderr,
        )
        return exit_code(exc)
    except OSError as exc:  # a full disk, a read-only folder, a name too long: one line, inputs kept
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 2


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: what happened, where, and the fix."""
    import errno
    import re

    where = exc.filename or "an output file"
    short_write = exc.errno is None and re.search(
        r"\d+ requested and \d+ written", str(exc)
    )  # numpy's tofile
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or short_write:
        return f"{where}: disk full - free some space and rerun (the inputs were kept)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"permission denied at '{where}': make that folder writable (or run with "
            "--keep-inputs if only the input folder is read-only); the inputs were kept"
        )
    if exc.errno == errno.ENAMETOOLONG:
        return f"file name too long: '{str(where)[:60]}...': choose a shorter name"
    return f"{exc.strerror or type(exc).__name__} at '{where}': check that path (the inputs were kept)"


def _rank_note() -> str:
    """` (rank N)` on torchrun's ranks other than 0, else nothing."""
    from . import distributed

    try:
        return f" (rank {distributed.rank()})" if not distributed.is_main() else ""
    except PaulowError:  # the torchrun variables themselves are the error
        return ""


def script_main(command: str, script_file: str) -> Callable[[], None]:
    """Run one command for a top-level script whose default root is the script's folder."""
    root = Path(script_file).resolve().parent
    sys.exit(main([command, *sys.argv[1:]], default_root=root))

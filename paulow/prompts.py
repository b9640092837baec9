"""Terminal prompts. Every prompt has a flag; without a terminal answer (EOF) the user gets the flag."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from .errors import UsageError

T = TypeVar("T")


def ask(question: str, flag: str, default: str | None = None, assume_default: bool = False) -> str:
    """Ask one question on stdin; an empty answer takes the default; EOF names the flag to use."""
    if assume_default and default is not None:
        return default
    suffix = f" [{default}]" if default is not None else ""
    print(f"{question}{suffix}: ", end="", flush=True)
    line = sys.stdin.readline() if sys.stdin is not None and not sys.stdin.closed else ""
    if not line:
        print()
        raise UsageError(
            f"no answer on standard input to '{question}': pass {flag}"
            + (" (or --yes to accept the defaults)" if default is not None else "")
        )
    answer = line.strip()
    return answer if answer else (default or "")


def ask_until(
    question: str,
    flag: str,
    parse: Callable[[str], T],
    default: str | None = None,
    assume_default: bool = False,
    tries: int = 5,
) -> T:
    """Ask again while `parse` raises ValueError (its message says what is valid)."""
    for _ in range(tries):
        answer = ask(question, flag, default, assume_default)
        try:
            return parse(answer)
        except ValueError as exc:
            if assume_default:
                raise UsageError(f"default answer '{answer}' is not valid ({exc}): pass {flag}") from None
            print(f"  {exc}")
    raise UsageError(f"no valid answer after {tries} tries: pass {flag}")

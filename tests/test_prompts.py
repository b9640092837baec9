"""Prompts without a terminal and model names the file system cannot hold."""

from __future__ import annotations

import sys

import pytest

from paulow.commands.common import MAX_NAME, ask_model_name
from paulow.errors import UsageError
from paulow.prompts import ask


def test_closed_stdin_names_the_flag(monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(UsageError, match="pass --model NAME"):
        ask("Which model", "--model NAME")


def test_too_long_name_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=f"at most {MAX_NAME}"):
        ask_model_name("a" * 300, tmp_path, overwrite=False, assume_default=True, default="m")
    assert (
        ask_model_name("a" * MAX_NAME, tmp_path, overwrite=False, assume_default=True, default="m")
        == "a" * MAX_NAME
    )

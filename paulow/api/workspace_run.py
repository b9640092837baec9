"""What the commands' shared pieces need from the package: model rows, input fingerprints, training
options, the TensorBoard check and the torchrun-aware workspace lock."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..workspace import Fingerprint, Workspace

MAX_NAME = 120  # the report folder adds '_report_NN' and the file system allows 255 bytes
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_model_name(name: str, models_dir: Path, overwrite: bool) -> str:
    """A valid new model name (a trailing `.pth` dropped); a `ValueError` saying why not, also for
    one that exists unless overwriting was asked for."""
    name = name[:-4] if name.lower().endswith(".pth") else name
    if not _NAME_OK.match(name):
        raise ValueError(f"'{name}' is not a valid name: use letters, digits, '.', '_' or '-'")
    if len(name) > MAX_NAME:
        raise ValueError(f"the name '{name[:20]}...' has {len(name)} characters: use at most {MAX_NAME}")
    if (models_dir / f"{name}.pth").exists() and not overwrite:
        raise ValueError(
            f"a model named '{name}' already exists in '{models_dir}': choose another "
            "name (or pass --overwrite)"
        )
    return name


def free_folder(path: Path) -> Path:
    """`path`, or `path_2`, `path_3`, ... — never reuse a folder holding earlier results."""
    if not path.exists():
        return path
    n = 2
    while path.with_name(f"{path.name}_{n}").exists():
        n += 1
    return path.with_name(f"{path.name}_{n}")


def describe_model(path: Path) -> dict:
    """One row of the saved-model table (name, date, network, channels, classes, test Dice); a
    `ModelError` naming the file when it cannot be read."""
    from ..checkpoint import describe

    return describe(path)


def read_input_fingerprints(folders: Iterable[Path]) -> dict[Path, Fingerprint]:
    """Fingerprints of the images in these folders (missing folders skipped), taken before a run
    reads them, so clearing can tell a file that changed afterwards."""
    from ..io.listing import list_images
    from ..workspace import fingerprints

    return fingerprints(f for folder in folders if folder.is_dir() for f in list_images(folder))


def given_training_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The training options among `values` that were given (None and False are left to the preset)."""
    from ..config import option_names

    return {k: v for k, v in values.items() if k in option_names() and v is not None and v is not False}


def training_config(options: Mapping[str, Any], preset: str | None, device: str) -> TrainConfig:
    """The run's `TrainConfig`: the preset for the device, then every given option (validated)."""
    from ..config import config_from_options

    return config_from_options(dict(options), preset, device)


def require_tensorboard() -> None:
    """Fail before any work when the tensorboard package is missing (a `UsageError` naming the extra)."""
    from ..watch import tensorboard_writer_class

    tensorboard_writer_class()


@contextlib.contextmanager
def workspace_lock(ws: Workspace) -> Iterator[None]:
    """The workspace lock, held by rank 0 alone under torchrun (every rank learns whether it was
    taken, so all exit alike when another run holds it); the plain lock without torchrun."""
    from .. import distributed

    with contextlib.ExitStack() as stack:
        distributed.on_main(lambda: stack.enter_context(ws.lock()))
        yield

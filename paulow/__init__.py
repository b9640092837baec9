"""PAULow: train an attention U-Net with a threshold-based dynamic loss from a few annotated
microscopy images, and segment new images and stacks with it."""

__version__ = "0.1.0"

import sys as _sys
import types as _types

_API = ("Model", "Prediction", "TrainConfig", "train", "finetune", "load_model", "evaluate")
__all__ = list(_API)


class _Package(_types.ModuleType):
    """`paulow.evaluate` is the API function even after the submodule `paulow.evaluate` is imported
    (`from paulow.evaluate import X` goes through `sys.modules` and still works). The training code
    lives in `paulow.training`, so `paulow.train` is only the function."""

    def __setattr__(self, name: str, value) -> None:
        if name in _API and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


def __getattr__(name: str):
    """The public API (`paulow.train`, `paulow.load_model`, ...), imported on first use so that
    `import paulow` stays light."""
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'paulow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))


_sys.modules[__name__].__class__ = _Package

"""Seeded fuzzing of the decoders: a few hundred mutated TIFF/PNG/JPEG files made from small valid
ones. Every outcome of `read_image` and `read_mask` is a decoded array or one `PaulowError` line,
within a per-file time bound (never a hang, a traceback of another type, or a crash)."""

from __future__ import annotations

import io as _io
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from paulow.errors import PaulowError
from paulow.io import read_image, read_mask

SEED = 20261206
MUTANTS_PER_FILE = 22  # x 12 valid files x 2 readers: 528 decodes
SECONDS_PER_FILE = 5.0


def _tiff(**kwargs) -> bytes:
    data = kwargs.pop("data")
    buffer = _io.BytesIO()
    tifffile.imwrite(buffer, data, **kwargs)
    return buffer.getvalue()


def _pil(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = _io.BytesIO()
    image = Image.fromarray(array)
    if kwargs.pop("palette", False):
        image = image.convert("P")
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def valid_files() -> dict[str, bytes]:
    """Small valid files of every kind the readers take."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (24, 24), dtype=np.uint8)
    rgb = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    return {
        "grey.tif": _tiff(data=grey),
        "stack16.tif": _tiff(data=rng.integers(0, 4000, (3, 16, 16), dtype=np.uint16)),
        "float.tif": _tiff(data=rng.random((16, 16), dtype=np.float32) * 3),
        "imagej_float.tif": _tiff(data=rng.random((2, 16, 16), dtype=np.float32), imagej=True),
        "rgb.tif": _tiff(data=rgb, photometric="rgb"),
        "tiled.tif": _tiff(
            data=rng.integers(0, 255, (32, 32), dtype=np.uint8), tile=(16, 16), compression="zlib"
        ),
        "big.tif": _tiff(data=grey, bigtiff=True),
        "grey.png": _pil(grey, "PNG"),
        "rgb.png": _pil(rgb, "PNG"),
        "palette.png": _pil(rgb, "PNG", palette=True),
        "grey16.png": _pil(rng.integers(0, 60000, (16, 16)).astype(np.uint16), "PNG"),
        "rgb.jpg": _pil(rgb, "JPEG", quality=90),
    }


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One of: flipped bytes, a 4-byte word overwritten (offsets, counts, sizes), truncation, or
    random bytes inserted."""
    out = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:
        for _ in range(int(rng.integers(1, 8))):
            out[int(rng.integers(len(out)))] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        at = int(rng.integers(0, max(1, min(len(out), 512) - 4)))  # headers and IFDs sit early
        word = rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, int(rng.integers(0, 2**32)), len(out) // 2])
        out[at : at + 4] = int(word).to_bytes(4, "little")
    elif kind == 2:
        out = out[: int(rng.integers(8, len(out)))]
    else:
        at = int(rng.integers(len(out)))
        out[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return bytes(out)


class _TooSlow(Exception):
    pass


def _alarm(signum, frame):
    raise _TooSlow


def _outcome(reader, path: Path) -> tuple[str, str | None]:
    """("decoded" | "refused", None), or (_, what went wrong) when it was neither an array nor one
    PaulowError line within the time bound."""
    start, kind = time.monotonic(), "decoded"
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_FILE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = reader(path)
        problem = (
            None
            if isinstance(result, np.ndarray) or isinstance(getattr(result, "data", None), np.ndarray)
            else f"returned {type(result).__name__}"
        )
    except PaulowError as exc:
        kind = "refused"
        problem = None if "\n" not in str(exc) and str(exc) else f"error of several lines: {str(exc)[:200]!r}"
    except _TooSlow:
        problem = f"took more than {SECONDS_PER_FILE} s"
    except Exception as exc:  # noqa: BLE001 - exactly what the test looks for
        problem = f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if problem is None and time.monotonic() - start > SECONDS_PER_FILE:
        problem = f"took {time.monotonic() - start:.1f} s"
    return kind, problem


def test_mutated_files_decode_or_give_one_error_line(tmp_path):
    rng = np.random.default_rng(SEED)
    failures, counts, start = [], {"decoded": 0, "refused": 0}, time.monotonic()
    for name, data in valid_files().items():
        for i in range(MUTANTS_PER_FILE):
            path = tmp_path / f"{i:02d}_{name}"
            path.write_bytes(mutate(data, rng))
            for reader in (read_image, read_mask):
                kind, problem = _outcome(reader, path)
                if problem:
                    failures.append(f"{reader.__name__}({path.name}): {problem}")
                counts[kind] += 1
    assert not failures, f"{len(failures)} of {2 * MUTANTS_PER_FILE * 12} decodes: " + "; ".join(
        failures[:10]
    )
    assert counts["decoded"] > 50 and counts["refused"] > 50, counts  # the mutations reach both outcomes
    assert time.monotonic() - start < 120


@pytest.mark.parametrize("name", sorted(valid_files()))
def test_the_valid_files_decode(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(valid_files()[name])
    assert read_image(path).data.ndim == 4 and read_mask(path).ndim == 3

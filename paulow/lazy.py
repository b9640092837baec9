"""Lazy access to images too large to hold: tiled (Big)TIFF / OME-TIFF through tifffile's zarr
store, OME-Zarr (NGFF 0.4 / 0.5) through zarr, and in-memory arrays, all seen as
`(pages, C, H, W)` and read one region of one page at a time. A pyramid is read at full resolution;
its coarser levels serve the normalisation statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UnreadableImageError

# a single-strip (untiled) TIFF page larger than this cannot be read in pieces
UNTILED_LIMIT_BYTES = 1 << 30
# whole-page statistics are exact (as normalisation.normalise computes them) up to this many pixels
EXACT_STATS_PIXELS = 1 << 24
SAMPLE_BLOCK = 256  # px side of the blocks sampled for the statistics of larger pages
SAMPLE_GRID = 8  # up to 8 x 8 blocks, evenly spread


@dataclass
class LazyImage:
    """A `(pages, C, H, W)` view of an array-like whose axes are named by `axes` (letters TZCYXSIQ...)."""

    path: Path
    array: Any  # numpy or zarr array
    axes: str
    levels: list = field(default_factory=list)  # coarser pyramid levels (same axes), if any

    def __post_init__(self) -> None:
        self.axes = self.axes.upper()
        if "Y" not in self.axes or "X" not in self.axes or len(self.axes) != len(self.array.shape):
            raise UnreadableImageError(
                f"{self.path}: axes {self.axes!r} do not fit shape {self.array.shape} "
                "- save the image with named Y and X axes"
            )
        sizes = dict(zip(self.axes, self.array.shape))
        self._page_axes = [a for a in self.axes if a not in "CSYX"]
        self._channel_axes = [a for a in self.axes if a in "CS"]
        self.pages = math.prod(sizes[a] for a in self._page_axes)
        self.channels = math.prod(sizes[a] for a in self._channel_axes)
        self.height, self.width = sizes["Y"], sizes["X"]
        self.dtype = np.dtype(self.array.dtype)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.pages, self.channels, self.height, self.width

    def read(
        self, page: int, ys: slice = slice(None), xs: slice = slice(None), array: Any = None
    ) -> np.ndarray:
        """Raw `(C, h, w)` region of one page (of `array`, a pyramid level, if given)."""
        array = self.array if array is None else array
        sizes = dict(zip(self.axes, array.shape))
        where = dict(zip(self._page_axes, np.unravel_index(page, [sizes[a] for a in self._page_axes])))
        index = tuple(
            int(where[a]) if a in where else ys if a == "Y" else xs if a == "X" else slice(None)
            for a in self.axes
        )
        region = np.asarray(array[index])
        kept = [a for a in self.axes if a not in where]
        order = [kept.index(a) for a in self._channel_axes] + [kept.index("Y"), kept.index("X")]
        region = np.transpose(region, order)
        region = region.reshape((-1,) + region.shape[-2:])
        return region.astype(region.dtype.newbyteorder("="), copy=False)


def open_lazy(path: Path) -> LazyImage:
    """A `LazyImage` of a TIFF or an OME-Zarr; `UnreadableImageError` (one line) otherwise."""
    path = Path(path)
    if not path.exists():
        raise UnreadableImageError(f"{path}: no such file or folder - check the path")
    if path.is_dir() or path.suffix.lower() == ".zarr":
        return _open_zarr(path)
    if path.suffix.lower() in (".tif", ".tiff", ".btf", ".tf8"):
        return _open_tiff(path)
    from .io import read_image  # PNG, JPEG, ...: small formats, read whole

    stack = read_image(path)
    return LazyImage(path, stack.data, "QCYX")


def is_lazy_input(path: Path) -> bool:
    """Whether `path` names an OME-Zarr (a folder or `.zarr`)."""
    return Path(path).is_dir() or Path(path).suffix.lower() == ".zarr"


def _open_tiff(path: Path) -> LazyImage:
    import tifffile
    import zarr

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            page: Any = series.pages[0]
            axes = series.axes
            untiled_big = (
                not page.is_tiled
                and page.rowsperstrip >= page.imagelength
                and page.nbytes > UNTILED_LIMIT_BYTES
            )
        if untiled_big:
            raise UnreadableImageError(
                f"{path}: an untiled TIFF page of {page.nbytes / 2**30:.1f} GiB cannot be read in pieces - convert "
                "it to a tiled TIFF, e.g. `python -c \"import tifffile; tifffile.imwrite('out.tif', "
                "tifffile.memmap('in.tif'), tile=(512, 512), bigtiff=True)\"` or `vips tiffsave in.tif out.tif "
                "--tile --bigtiff`"
            )
        store = tifffile.imread(path, aszarr=True, series=0)
        opened = zarr.open(store, mode="r")
    except UnreadableImageError:
        raise
    except Exception as exc:
        raise UnreadableImageError(f"{path}: not a readable TIFF ({exc}) - check the file") from exc
    if isinstance(opened, zarr.Group):  # a pyramid: level 0 is full resolution
        keys = sorted(opened.array_keys(), key=int)
        return LazyImage(path, opened[keys[0]], axes, [opened[k] for k in keys[1:]])
    return LazyImage(path, opened, axes)


def _open_zarr(path: Path) -> LazyImage:
    import zarr

    try:
        group: Any = zarr.open_group(path, mode="r")
        attrs: dict[str, Any] = dict(group.attrs)
    except Exception as exc:
        raise UnreadableImageError(
            f"{path}: not a readable zarr group ({exc}) - give an OME-Zarr image"
        ) from exc
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        raise UnreadableImageError(
            f"{path}: no OME-Zarr 'multiscales' metadata - give the image group of an "
            "OME-Zarr (e.g. image.ome.zarr, or image.ome.zarr/0 for a plate field)"
        )
    meta = multiscales[0]
    axes = "".join(
        _axis_letter(a)
        for a in meta.get("axes", ["t", "c", "z", "y", "x"][-group[meta["datasets"][0]["path"]].ndim :])
    )
    arrays = [group[d["path"]] for d in meta["datasets"]]
    return LazyImage(path, arrays[0], axes, arrays[1:])


def _axis_letter(axis: Any) -> str:
    name = axis["name"] if isinstance(axis, dict) else str(axis)
    return {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}.get(name.lower(), "Q")


def page_stats(image: LazyImage, page: int, spec: dict) -> tuple[list[tuple[float, float]] | None, str]:
    """Per-channel (low, high) percentiles of a whole page for the model's normalisation `spec`,
    and how they were taken: exactly as `normalisation.normalise` for pages up to `EXACT_STATS_PIXELS`,
    else from the coarsest pyramid level of at least 1 Mpx, else from a fixed grid of blocks."""
    if spec.get("method") == "scale255":
        return None, "scale255"
    low, high = float(spec.get("low", 1.0)), float(spec.get("high", 99.8))
    if image.height * image.width <= EXACT_STATS_PIXELS:
        sample, how = image.read(page), "whole page"
    else:
        level = next(
            (
                lv
                for lv in reversed(image.levels)
                if lv.shape[image.axes.index("Y")] * lv.shape[image.axes.index("X")] >= 1 << 20
            ),
            None,
        )
        if level is not None:
            sample, how = image.read(page, array=level), f"pyramid level {tuple(level.shape)}"
        else:
            sample, how = (
                _block_sample(image, page),
                f"{SAMPLE_GRID}x{SAMPLE_GRID} blocks of {SAMPLE_BLOCK} px",
            )
    from .normalisation import _PERCENTILE_SAMPLE

    stats = []
    for channel in sample:
        flat = channel.astype(np.float32, copy=False).reshape(-1)
        flat = np.where(np.isfinite(flat), flat, 0.0).astype(np.float32)
        if flat.size > _PERCENTILE_SAMPLE:  # the same subsample normalisation.normalise takes
            flat = flat[:: math.ceil(flat.size / _PERCENTILE_SAMPLE)]
        lo, hi = np.percentile(flat, [low, high]) if flat.size else (0.0, 0.0)
        stats.append((float(lo), float(hi)))
    return stats, how


def _block_sample(image: LazyImage, page: int) -> np.ndarray:
    """`SAMPLE_GRID` x `SAMPLE_GRID` blocks at evenly spread fixed positions, side by side."""

    def starts(length: int) -> list[int]:
        last = max(length - SAMPLE_BLOCK, 0)
        return sorted({round(i * last / (SAMPLE_GRID - 1)) for i in range(SAMPLE_GRID)})

    blocks = [
        image.read(page, slice(y, y + SAMPLE_BLOCK), slice(x, x + SAMPLE_BLOCK)).reshape(image.channels, -1)
        for y in starts(image.height)
        for x in starts(image.width)
    ]
    return np.concatenate(blocks, axis=1)[:, None, :]

"""Tiled, pyramidal OME-TIFF (for Fiji / Bio-Formats and QuPath) from a chunked run's OME-Zarr
levels, written tile by tile (memory: one band of tiles of one level). Level n is level 0 taken
every 2**n-th pixel (nearest neighbour, as the OME-Zarr pyramid): label IDs are never averaged.
The coarser levels are SubIFDs of each full-resolution page, the layout Bio-Formats and QuPath read
as a pyramid."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .tiff_out import TIFF_TILE, resolution_tags, tiles

# OME's spelling of the units PAULow reads from TIFF tags, ImageJ and OME metadata
OME_UNITS = {"micron": "µm", "nm": "nm", "mm": "mm", "cm": "cm", "m": "m", "inch": "in"}
_ZARR_UNITS = {
    "micrometer": "micron",
    "nanometer": "nm",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
}


def input_pixel_size(path: Path) -> tuple[float, float, str] | None:
    """(y, x) pixel size and its unit (PAULow's spelling) of a TIFF or OME-Zarr input; None when
    the file carries none."""
    path = Path(path)
    try:
        if path.is_dir() or path.suffix.lower() == ".zarr":
            return _zarr_pixel_size(path)
        if path.suffix.lower() in (".tif", ".tiff", ".btf", ".tf8"):
            return _tiff_pixel_size(path)
    except Exception:  # calibration is optional: an odd header never stops the outputs
        return None
    return None


def _tiff_pixel_size(path: Path) -> tuple[float, float, str] | None:
    import tifffile

    from .io.tiff_read import _tiff_resolution

    with tifffile.TiffFile(path) as tif:
        resolution, unit = _tiff_resolution(tif)
    if resolution is None or unit is None:
        return None
    return 1.0 / resolution[1], 1.0 / resolution[0], unit


def _zarr_pixel_size(path: Path) -> tuple[float, float, str] | None:
    import zarr

    attrs: dict[str, Any] = dict(zarr.open_group(path, mode="r").attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    meta = multiscales[0]
    names = [a["name"] if isinstance(a, dict) else str(a) for a in meta["axes"]]
    units = [a.get("unit") if isinstance(a, dict) else None for a in meta["axes"]]
    scale = next(t["scale"] for t in meta["datasets"][0]["coordinateTransformations"] if t["type"] == "scale")
    y, x = names.index("y"), names.index("x")
    unit = _ZARR_UNITS.get(str(units[x]), units[x])
    if unit is None or not all(math.isfinite(s) and s > 0 for s in (scale[y], scale[x])):
        return None
    return float(scale[y]), float(scale[x]), str(unit)


def _metadata(pages: int, pixel_size: tuple[float, float, str] | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"axes": "ZYX" if pages > 1 else "YX"}
    if pixel_size is not None and pixel_size[2] in OME_UNITS:
        size_y, size_x, unit = pixel_size
        metadata.update(
            PhysicalSizeY=size_y,
            PhysicalSizeX=size_x,
            PhysicalSizeYUnit=OME_UNITS[unit],
            PhysicalSizeXUnit=OME_UNITS[unit],
        )
    return metadata


def write_ome_tiff(
    path: Path,
    levels: list[Any],
    pages: int,
    *,
    scale: int = 1,
    dtype: Any = np.uint8,
    pixel_size: tuple[float, float, str] | None = None,
) -> Path:
    """Write pyramid `levels` ((pages, h, w) or (h, w) chunked arrays, finest first) as one tiled,
    zlib-compressed OME-TIFF (BigTIFF above 2 GiB) at a free name next to `path`; values times
    `scale` as `dtype`. Nothing is overwritten; the file appears whole or not at all."""
    import tifffile

    from .io.atomic import atomic_write_path, unique_path

    height, width = levels[0].shape[-2:]
    nbytes = sum(pages * math.prod(level.shape[-2:]) for level in levels) * np.dtype(dtype).itemsize
    final = unique_path(Path(path))
    options: dict[str, Any] = dict(
        dtype=dtype, tile=(TIFF_TILE, TIFF_TILE), compression="zlib", photometric="minisblack"
    )
    with (
        atomic_write_path(final) as tmp,
        tifffile.TiffWriter(tmp, bigtiff=nbytes > 2**31 - 2**25, ome=True) as tif,
    ):
        for n, level in enumerate(levels):
            h, w = level.shape[-2:]
            shape = (pages, h, w) if pages > 1 else (h, w)
            first = n == 0
            tif.write(
                tiles(level, pages, scale, dtype),
                shape=shape,
                subifds=len(levels) - 1 if first else None,
                subfiletype=0 if first else 1,
                metadata=_metadata(pages, pixel_size) if first else None,
                **resolution_tags(pixel_size, 2**n),
                **options,
            )
    return final


__all__ = ["input_pixel_size", "write_ome_tiff"]

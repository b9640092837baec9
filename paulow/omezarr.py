"""OME-Zarr (NGFF 0.4, zarr format 2) output of a chunked run, written chunk by chunk.

Layout of `name.ome.zarr`:
- the root image: foreground probability (K channels for K >= 2) as uint8 0..255, `(c, [z,] y, x)`;
- `labels/mask`: the mask (0/1, or class indices), `image-label` metadata;
- `labels/objects`: instance labels (uint32) for binary and boundary models.
Each is a multiscale pyramid (level n is level 0 subsampled by 2**n, nearest neighbour), so napari
(napari-ome-zarr), Fiji (MoBIE / n5-zarr) and QuPath open it at any zoom. The metadata is written
by hand (it is a few lines of JSON, see https://ngff.openmicroscopy.org/0.4/) because the `ome-zarr`
package's writer needs a pydantic version the rest of the environment cannot have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

NGFF_VERSION = "0.4"


def level_shapes(height: int, width: int, chunk: int) -> list[tuple[int, int]]:
    """(H, W) of every pyramid level: halved (rounded up) until one chunk holds the whole level."""
    shapes = [(height, width)]
    while max(shapes[-1]) > chunk:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def _axes(lead: str) -> list[dict]:
    kinds = {"c": "channel", "z": "space", "y": "space", "x": "space"}
    return [{"name": a, "type": kinds[a]} for a in lead + "yx"]


def _multiscales(name: str, lead: str, levels: int) -> list[dict]:
    datasets = [
        {
            "path": str(n),
            "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(lead) + [float(2**n)] * 2}],
        }
        for n in range(levels)
    ]
    return [
        {"version": NGFF_VERSION, "name": name, "axes": _axes(lead), "datasets": datasets, "type": "nearest"}
    ]


def create_outputs(
    path: Path, pages: int, height: int, width: int, chunk: int, classes: int, instances: bool
) -> None:
    """Create the group, its arrays (all levels, empty) and metadata; idempotent for a resume."""
    import zarr

    root = zarr.open_group(path, mode="a", zarr_format=2)
    shapes = level_shapes(height, width, chunk)
    z = ("z",) if pages > 1 else ()
    lead = "c" + "".join(z)
    for n, (h, w) in enumerate(shapes):
        root.require_array(
            str(n),
            shape=(classes,) + ((pages,) if z else ()) + (h, w),
            chunks=(1,) + ((1,) if z else ()) + (chunk, chunk),
            dtype="uint8",
            fill_value=0,
        )
    root.attrs["multiscales"] = _multiscales("probability", lead, len(shapes))
    names = ["mask"] + (["objects"] if instances else [])
    labels = root.require_group("labels")
    labels.attrs["labels"] = names
    for name in names:
        group = labels.require_group(name)
        dtype = "uint32" if name == "objects" else "uint8"
        for n, (h, w) in enumerate(shapes):
            group.require_array(
                str(n),
                shape=((pages,) if z else ()) + (h, w),
                chunks=((1,) if z else ()) + (chunk, chunk),
                dtype=dtype,
                fill_value=0,
            )
        group.attrs["multiscales"] = _multiscales(name, "".join(z), len(shapes))
        group.attrs["image-label"] = {
            "version": NGFF_VERSION,
            "source": {"image": "../../"},
            **({"colors": _mask_colours(classes)} if name == "mask" else {}),
        }


def _mask_colours(classes: int) -> list[dict]:
    from .io import class_lut

    lut = class_lut(max(classes, 2))
    return [{"label-value": k, "rgba": [*map(int, lut[:, k]), 255]} for k in range(1, max(classes, 2))]


def arrays(path: Path) -> dict[str, Any]:
    """The level-0 arrays by role: "probability", "mask", "objects" (when written)."""
    import zarr

    root: Any = zarr.open_group(path, mode="r+")
    found = {"probability": root["0"], "mask": root["labels/mask/0"]}
    if "objects" in root["labels"]:
        found["objects"] = root["labels/objects/0"]
    return found


def level_arrays(path: Path, role: str) -> list[Any]:
    """Every pyramid level of one role's array, finest first."""
    import zarr

    root: Any = zarr.open_group(path, mode="r+")
    group = root if role == "probability" else root[f"labels/{role}"]
    count = len(group.attrs["multiscales"][0]["datasets"])
    return [group[str(n)] for n in range(count)]


def write_block(array: Any, page: int | None, ys: slice, xs: slice, data: np.ndarray) -> None:
    """Write a (…, h, w) block at (page,) ys, xs of a level array (`page` None for a 2-D array)."""
    lead: tuple = () if page is None else (page,)
    if array.ndim == len(lead) + 3:  # the probability image has a channel axis first
        array[(slice(None),) + lead + (ys, xs)] = data
    else:
        array[lead + (ys, xs)] = data


def downsample_block(src: Any, dst: Any, page: int | None, ys: slice, xs: slice) -> None:
    """Fill `dst[..., ys, xs]` (one chunk of a coarser level) from `src`, the level above, by
    taking every second pixel."""
    lead: tuple = () if page is None else (page,)
    channel: tuple = (slice(None),) if src.ndim == len(lead) + 3 else ()
    block = np.asarray(
        src[channel + lead + (slice(ys.start * 2, ys.stop * 2, 2), slice(xs.start * 2, xs.stop * 2, 2))]
    )
    dst[channel + lead + (ys, xs)] = block

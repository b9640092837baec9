"""From probabilities to masks, object instances, per-object tables and outline overlays.

Choices:
- Connected components use 8-connectivity: thin diagonal structures (filaments) stay one object.
- Instances of a class map (K > 1) are labelled class by class, so touching objects of different
  classes stay apart; labels are 1..N over all classes.
- Labels are uint16, or uint32 when there are more than 65,535 objects.
- `mean_intensity` is the mean over the object's pixels of the mean over channels; with more than one
  channel, `mean_intensity_c0`, `mean_intensity_c1`, ... hold each channel's mean.
- Bounding boxes follow scikit-image: `bbox_max_row` and `bbox_max_col` are exclusive.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from .errors import ShapeMismatchError, UsageError

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
PixelSize = float | tuple[float, float]


def to_mask(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """`(H, W) uint8` mask from probabilities `(K, H, W)`: K == 1 → 1 where prob > threshold, else
    0; K > 1 → the index of the most probable class (the threshold is not used)."""
    prob = np.asarray(prob)
    if prob.ndim != 3 or prob.shape[0] < 1:
        raise ShapeMismatchError(f"probabilities must be (classes, height, width), got {prob.shape}")
    if prob.shape[0] == 1:
        return (prob[0] > threshold).view(np.uint8)
    if prob.shape[0] > 256:
        raise UsageError(f"{prob.shape[0]} classes do not fit an 8-bit mask; use at most 256 classes")
    return _argmax_channels(prob)


def _argmax_channels(prob: np.ndarray) -> np.ndarray:
    """First index of the largest channel, with two (H, W) buffers instead of np.argmax's int64."""
    best = prob[0].copy()
    index = np.zeros(prob.shape[1:], dtype=np.uint8)
    for k in range(1, prob.shape[0]):
        higher = prob[k] > best
        index[higher] = k
        np.maximum(best, prob[k], out=best)
    return index


def label_instances(
    mask: np.ndarray, split_touching: bool = False, min_size: int = 0, min_distance: int = 5
) -> np.ndarray:
    """Number the objects of a mask (0/1 or class indices) 1..N, 8-connected; background 0.

    `split_touching` separates touching round objects by a watershed on the distance transform,
    seeded at distance maxima at least `min_distance` pixels apart. Objects smaller than
    `min_size` pixels are removed. Returns uint16 (uint32 above 65,535 objects).
    """
    mask = _check_2d(mask, "mask")
    values = _foreground_values(mask)
    if len(values) == 1:
        labels = _components(mask == values[0], split_touching, min_distance)
    else:
        labels = np.zeros(mask.shape, dtype=np.int32)
        for value in values:
            foreground = mask == value
            components = _components(foreground, split_touching, min_distance)
            labels[foreground] = components[foreground] + labels.max()
    if min_size > 0:
        labels = _remove_small(labels, min_size)
    return _smallest_label_dtype(labels)


def _foreground_values(mask: np.ndarray) -> list[int]:
    if mask.dtype == bool:
        return [True]
    if not np.issubdtype(mask.dtype, np.integer):
        raise UsageError(f"a mask must hold whole numbers (0/1 or class indices), got {mask.dtype}")
    if mask.size and mask.min() < 0:
        raise UsageError("a mask must not hold negative values")
    counts = np.bincount(mask.ravel()) if mask.size else np.zeros(1, dtype=np.int64)
    return [int(v) for v in np.flatnonzero(counts[1:]) + 1]


def _components(foreground: np.ndarray, split_touching: bool, min_distance: int) -> np.ndarray:
    from scipy import ndimage

    labels, _ = ndimage.label(foreground, structure=EIGHT_CONNECTED)
    return _split_touching(foreground, labels, min_distance) if split_touching else labels


def _split_touching(foreground: np.ndarray, labels: np.ndarray, min_distance: int) -> np.ndarray:
    """Watershed of -distance from distance maxima; a component left without a seed keeps one label."""
    from scipy import ndimage
    from skimage.feature import peak_local_max

    distance = ndimage.distance_transform_edt(foreground)
    peaks = peak_local_max(
        distance, min_distance=max(int(min_distance), 1), labels=labels, exclude_border=False
    )
    markers = np.zeros(labels.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return seeded_watershed(-distance, markers, foreground)


def seeded_watershed(surface: np.ndarray, markers: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Flood `surface` from the `markers` (seed labels > 0) inside `foreground`, 8-connected; each
    foreground component left without a seed keeps one label. Labels renumbered 1..N (int32)."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    split = watershed(surface, markers, mask=foreground, connectivity=2)
    unseeded = foreground & (split == 0)
    if unseeded.any():
        extra, _ = ndimage.label(unseeded, structure=EIGHT_CONNECTED)
        split[unseeded] = extra[unseeded] + split.max()
    return _relabel_sequential(split, np.bincount(split.ravel()) > 0)


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    areas = np.bincount(labels.ravel())
    return _relabel_sequential(labels, areas >= min_size)


def _relabel_sequential(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Labels where `keep[label]` renumbered 1..N in order; the others (and 0) become 0."""
    keep = keep.copy()
    keep[0] = False
    lookup = np.zeros(len(keep), dtype=np.int32)
    lookup[keep] = np.arange(1, int(keep.sum()) + 1)
    return lookup[labels]


def _smallest_label_dtype(labels: np.ndarray) -> np.ndarray:
    top = int(labels.max()) if labels.size else 0
    return labels.astype(np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32)


def object_table(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    pixel_size: PixelSize | None = None,
    unit: str | None = None,
) -> list[dict[str, Any]]:
    """One row per object of a label image, in label order.

    Keys: label, area_px, centroid_y, centroid_x, bbox_min_row, bbox_min_col, bbox_max_row,
    bbox_max_col (max exclusive); with `pixel_size` (the side of a pixel in `unit`, or (y, x)):
    area and area_unit ("unit^2"); with `image` ((H, W) or (C, H, W), raw values): mean_intensity,
    and mean_intensity_c<i> per channel when C > 1; then the shape columns of `paulow.measure`.
    """
    from scipy import ndimage

    labels = _check_2d(labels, "labels")
    channels = _channels(image, labels.shape)
    scale = _pixel_area(pixel_size)
    rows = []
    for index, box in enumerate(ndimage.find_objects(_as_label_input(labels)), start=1):
        if box is not None:
            rows.append(_object_row(labels, index, box, channels, scale, unit))
    from .measure import add_measurements

    return add_measurements(rows, labels, pixel_size, unit)


def _object_row(
    labels: np.ndarray,
    label: int,
    box: tuple[slice, slice],
    channels: np.ndarray | None,
    scale: float | None,
    unit: str | None,
) -> dict[str, Any]:
    inside = labels[box] == label
    ys, xs = np.nonzero(inside)
    row: dict[str, Any] = {"label": label, "area_px": int(inside.sum())}
    if scale is not None:
        row["area"] = row["area_px"] * scale
        row["area_unit"] = f"{unit}^2" if unit else None
    row.update(
        centroid_y=float(ys.mean() + box[0].start),
        centroid_x=float(xs.mean() + box[1].start),
        bbox_min_row=box[0].start,
        bbox_min_col=box[1].start,
        bbox_max_row=box[0].stop,
        bbox_max_col=box[1].stop,
    )
    if channels is not None:
        means = channels[:, box[0], box[1]][:, inside].astype(np.float64).mean(axis=1)
        row["mean_intensity"] = float(means.mean())
        if len(means) > 1:
            row.update({f"mean_intensity_c{c}": float(m) for c, m in enumerate(means)})
    return row


def _as_label_input(labels: np.ndarray) -> np.ndarray:
    # find_objects needs an integer type; it treats label values as positions 1..max
    return labels if np.issubdtype(labels.dtype, np.integer) else labels.astype(np.int64)


def _channels(image: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if image is None:
        return None
    image = np.asarray(image)
    channels = image[None] if image.ndim == 2 else image
    if channels.ndim != 3 or channels.shape[1:] != shape:
        raise ShapeMismatchError(
            f"the image has shape {image.shape} but the labels {shape}; "
            "pass the (C, H, W) or (H, W) slice the labels were made from"
        )
    return channels


def _pixel_area(pixel_size: PixelSize | None) -> float | None:
    if pixel_size is None:
        return None
    size_y, size_x = cast(
        "tuple[float, float]", (pixel_size, pixel_size) if np.isscalar(pixel_size) else pixel_size
    )
    if not (size_y > 0 and size_x > 0):
        raise UsageError(f"the pixel size must be positive, got {pixel_size!r}")
    return float(size_y) * float(size_x)


def object_classes(
    rows: list[dict[str, Any]], labels: np.ndarray, mask: np.ndarray, names: list[str]
) -> list[dict[str, Any]]:
    """`object_table` rows of instances labelled from a class-index `mask` (K >= 2), each with its
    `class` (name) and `class_index`, placed after `label`."""
    lookup = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.int64)
    lookup[labels.ravel()] = mask.ravel()  # every object lies within one class
    out = []
    for row in rows:
        index = int(lookup[row["label"]])
        out.append(
            {
                "label": row["label"],
                "class": names[index],
                "class_index": index,
                **{k: v for k, v in row.items() if k != "label"},
            }
        )
    return out


def summary_row(
    labels: np.ndarray, pixel_size: PixelSize | None = None, unit: str | None = None, **identity: Any
) -> dict[str, Any]:
    """Per-image counts: `identity` (e.g. image=..., page=...) then objects, foreground_px,
    foreground_fraction, mean_area_px, and total_area / area_unit with `pixel_size`."""
    labels = _check_2d(labels, "labels")
    areas = np.bincount(_as_label_input(labels).ravel())[1:] if labels.size else np.zeros(0, int)
    areas = areas[areas > 0]
    foreground = int(areas.sum())
    row: dict[str, Any] = dict(identity)
    row.update(
        objects=len(areas),
        foreground_px=foreground,
        foreground_fraction=foreground / labels.size if labels.size else 0.0,
        mean_area_px=float(areas.mean()) if len(areas) else 0.0,
    )
    scale = _pixel_area(pixel_size)
    if scale is not None:
        row["total_area"] = foreground * scale
        row["area_unit"] = f"{unit}^2" if unit else None
    return row


def outline_overlay(
    image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 0, 0), thickness: int = 1
) -> np.ndarray:
    """`(H, W, 3) uint8` copy of the image with the outline of every object of `mask` (0/1, class
    indices or instance labels) drawn in `color`; edges between touching objects are drawn too.
    The image is grey `(H, W)`, `(H, W, 3|4)` or `(C, H, W)`; other dtypes than uint8 are scaled
    from their min..max."""
    mask = _check_2d(mask, "mask")
    rgb = _as_rgb_uint8(image)
    if rgb.shape[:2] != mask.shape:
        raise ShapeMismatchError(
            f"the image has shape {np.shape(image)} but the mask {mask.shape}; "
            "pass the image the mask was made from"
        )
    rgb[_outline(mask, thickness)] = color
    return rgb


def class_overlay(image: np.ndarray, mask: np.ndarray, names: list[str], alpha: float = 0.35) -> np.ndarray:
    """`(H', W', 3) uint8` overlay of a class-index mask (K = len(names) >= 2): each foreground class
    tinted and outlined in its lookup-table colour (`io.class_lut`, the colours Fiji shows for the
    mask), with a legend of the foreground classes' names to the right of the image."""
    from .io.write import class_lut

    mask = _check_2d(mask, "mask")
    rgb = _as_rgb_uint8(image)
    if rgb.shape[:2] != mask.shape:
        raise ShapeMismatchError(
            f"the image has shape {np.shape(image)} but the mask {mask.shape}; "
            "pass the image the mask was made from"
        )
    colours = class_lut(len(names)).T  # (256, 3): row c is class c's colour
    tinted = rgb.astype(np.float32)
    inside = mask > 0
    tinted[inside] = (1 - alpha) * tinted[inside] + alpha * colours[mask[inside]]
    rgb = tinted.round().astype(np.uint8)
    edge = _outline(mask, 1)
    rgb[edge] = colours[mask[edge]]
    return _with_legend(
        rgb,
        [
            (str(n), cast("tuple[int, int, int]", tuple(int(v) for v in colours[c])))
            for c, n in enumerate(names)
            if c
        ],
    )


def _with_legend(rgb: np.ndarray, entries: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """The image with a black legend panel on its right: a colour swatch and a name per entry."""
    import cv2

    font, scale, row = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 14
    width = 8 + 14 + max(cv2.getTextSize(name, font, scale, 1)[0][0] for name, _ in entries) + 6
    height = max(rgb.shape[0], 4 + row * len(entries))
    canvas = np.zeros((height, rgb.shape[1] + width, 3), dtype=np.uint8)
    canvas[: rgb.shape[0], : rgb.shape[1]] = rgb
    x = rgb.shape[1] + 8
    for i, (name, colour) in enumerate(entries):
        top = 4 + i * row
        canvas[top : top + 10, x : x + 10] = colour
        cv2.putText(canvas, name, (x + 14, top + 9), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _outline(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Object pixels with an 8-neighbour of another value (pixels outside the image do not count)."""
    edge = np.zeros(mask.shape, dtype=bool)
    pairs = [
        (np.s_[:, 1:], np.s_[:, :-1]),
        (np.s_[1:, :], np.s_[:-1, :]),
        (np.s_[1:, 1:], np.s_[:-1, :-1]),
        (np.s_[1:, :-1], np.s_[:-1, 1:]),
    ]
    for here, there in pairs:
        differs = mask[here] != mask[there]
        edge[here] |= differs
        edge[there] |= differs
    edge &= mask > 0
    if thickness > 1:
        import cv2

        edge = cv2.dilate(edge.view(np.uint8), np.ones((3, 3), np.uint8), iterations=thickness - 1).astype(
            bool
        ) & (mask > 0)
    return edge


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] not in (3, 4) and image.shape[0] in (1, 3, 4):
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3]
    elif image.ndim != 2:
        raise ShapeMismatchError(
            f"an overlay needs a grey (H, W) or colour (H, W, 3) image, got shape {image.shape}"
        )
    image = _scale_to_uint8(image)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image.copy()


def _scale_to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    values = image.astype(np.float32)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.nan_to_num(scaled).clip(0, 255).astype(np.uint8)


def _check_2d(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ShapeMismatchError(f"a {name} must be 2-D (height, width), got shape {array.shape}")
    return array

"""What segmenting one image writes: its mask, and on request probabilities, overlays, labels,
object tables, ROIs, GeoJSON and attention maps (`paulow predict`'s outputs, every file atomic)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .workspace import Fingerprint  # (the writers are imported where used: `paulow.api` stays light)

log = logging.getLogger("paulow")


@dataclass
class SegmentOptions:
    """How to segment (defaults come from the model file)."""

    tile: int | None = None
    overlap: float | None = None
    batch_size: int = 8
    threshold: float | None = None
    tta: bool = False
    device: str = "cpu"
    save_prob: bool = False
    overlay: bool = False
    instances: bool = False
    per_page: bool = False  # --instances on a stack: labels per section instead of linked through z
    split_touching: bool = False
    rois: bool = False
    geojson: bool = False  # X_objects.geojson for QuPath (implies instances)
    save_attention: bool = False
    compile: bool = False
    min_size: int | None = None  # px; None: the model's (tuned on validation in training)
    runtime: str = "torch"  # or "onnxruntime" (paulow.ort_runtime)


@dataclass
class FileResult:
    source: Path
    written: list[Path] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    error: str | None = None
    read_as: Fingerprint | None = None  # the input as it was read, so clearing can tell a changed file
    written_sha256: list[str] = field(default_factory=list)  # of `written`, for the run record
    chunked: dict | None = None  # how the chunked engine ran, for an image too large to hold


def class_names(meta: dict, classes: int) -> list[str]:
    """The model's class names (`--class-names` at training), else "class 0", "class 1", ...; one
    name ("foreground") for a binary model."""
    names = list(meta.get("class_names") or [])
    if classes <= 1:
        return ["foreground"]
    return [str(n) for n in names] if len(names) == classes else [f"class {i}" for i in range(classes)]


def write_mask_output(model, stack, out: np.ndarray, path: Path, out_dir: Path, boundary: bool) -> Path:
    """The mask of one input: 0/255 (binary and boundary models) or class indices with a colour lookup
    table (K >= 2) as TIFF; a NIfTI mask on the input's grid for NIfTI / DICOM inputs."""
    from .io.atomic import unique_path
    from .io.write import binary_to_uint8, write_label_tiff, write_mask

    mask_out = unique_path(out_dir / f"{path.stem}_mask.tif")
    if stack.geometry is not None:  # NIfTI / DICOM in: a NIfTI mask on the input's grid
        from .volumes import write_volume_mask

        binary = model.classes <= 1 or boundary  # 0/1 (a label volume), class indices for K >= 2
        return write_volume_mask(out_dir, stack, (out != 0) if binary else out, "_mask")
    if model.classes <= 1 or boundary:
        return write_mask(
            mask_out,
            binary_to_uint8(out),
            resolution=stack.resolution,
            unit=stack.unit,
            calibration=stack.calibration,
        )
    return write_label_tiff(  # class indices with a colour lookup table (Fiji)
        mask_out,
        out,
        model.classes,
        resolution=stack.resolution,
        unit=stack.unit,
        colours=model.meta.get("palette"),
        calibration=stack.calibration,
    )


def _write_prob(path: Path, probs: list[np.ndarray], names: list[str], stack) -> Path:
    """Probabilities as float32 ImageJ TIFF. Binary: one plane per page. K >= 2: a hyperstack with
    one channel per class (C = K, class 0 first, channel labels = class names) and one Z plane per page."""
    from .io.write import write_tiff

    if len(names) < 2:
        prob = np.stack([p[0] for p in probs]).astype(np.float32)
        return write_tiff(
            path, prob, resolution=stack.resolution, unit=stack.unit, calibration=stack.calibration
        )
    prob = np.stack(probs).astype(np.float32)
    return write_tiff(
        path,
        prob if len(probs) > 1 else prob[0],
        axes="ZCYX" if len(probs) > 1 else "CYX",
        resolution=stack.resolution,
        unit=stack.unit,
        imagej_extra={"Labels": names * len(probs)},
        calibration=stack.calibration,
    )


def write_extras(
    stack, probs, masks, out_dir: Path, opts: SegmentOptions, result: FileResult, meta: dict
) -> None:
    """The outputs besides the mask that `opts` asks for, appended to `result.written`."""
    from .boundaries import is_boundary_model
    from .io.atomic import unique_path
    from .volumes import volume_stem

    stem = volume_stem(stack.path)  # case1.nii.gz -> case1
    boundary = is_boundary_model(meta)  # masks are already its objects (interior + boundary)
    names = class_names(meta, 1 if boundary else probs[0].shape[0])
    if opts.save_prob:
        result.written.append(
            _write_prob(
                unique_path(out_dir / f"{stem}_prob.tif"),
                probs,
                class_names(meta, probs[0].shape[0]),
                stack,
            )
        )
    if opts.overlay:
        _write_overlays(stack, masks, names, out_dir, stem, result)
    if opts.instances:
        _write_instances(stack, probs, masks, out_dir, stem, opts, result, meta, names)


def _write_overlays(stack, masks, names: list[str], out_dir: Path, stem: str, result: FileResult) -> None:
    """One PNG per page: the mask's outline (K >= 2: each class in its colour) over the image."""
    from .io.atomic import unique_path
    from .io.write import write_png
    from .postprocess import class_overlay, outline_overlay

    for page, mask in enumerate(masks):
        grey = _display(stack.data[page])
        suffix = f"_p{page:03d}" if len(masks) > 1 else ""
        path = unique_path(out_dir / f"{stem}{suffix}_overlay.png")
        drawn = class_overlay(grey, mask, names) if len(names) >= 2 else outline_overlay(grey, mask)
        result.written.append(write_png(path, drawn))


def _instance_labels(probs, masks, opts: SegmentOptions, meta: dict, boundary: bool) -> list[np.ndarray]:
    """Labelled objects per page as `Prediction.labels` makes them (`paulow.remask.labels_from`):
    a boundary model's watershed from its interiors, else the masks' connected components
    (optionally split where they touch); objects under `opts.min_size` removed."""
    from .predict import choose_threshold
    from .remask import labels_from

    cut = choose_threshold(meta, opts.threshold)
    small = opts.min_size or 0
    return [labels_from(p, m, cut, boundary, small, opts.split_touching) for p, m in zip(probs, masks)]


def _write_instances(
    stack,
    probs,
    masks,
    out_dir: Path,
    stem: str,
    opts: SegmentOptions,
    result: FileResult,
    meta: dict,
    names: list[str],
) -> None:
    """Labels (linked through z on a stack unless per page), ROIs, object rows, summaries, GeoJSON."""
    from .boundaries import is_boundary_model
    from .io.atomic import unique_path
    from .stitch import links_through_z, stitch_sections, volume_rows

    labels = _instance_labels(probs, masks, opts, meta, is_boundary_model(meta))
    through_z = links_through_z(stack, opts.per_page) and len(names) < 2  # K >= 2: per-page class rows
    labels = list(stitch_sections(np.stack(labels))) if through_z else labels
    path = unique_path(out_dir / f"{stem}_labels.tif")
    result.written.append(_write_labels(path, np.stack(labels), stack))
    if opts.rois:
        from .rois import write_roi_zip

        path = unique_path(out_dir / f"{stem}_rois.zip")
        result.written.append(write_roi_zip(np.stack(labels), path))
    if through_z:  # one row per 3-D object: volume, z-extent, centroid in 3-D
        rows, summary = volume_rows(stack, np.stack(labels), masks)
        result.objects += rows
        result.summary.append(summary)
    features = _page_objects(stack, labels, masks, names, meta, opts, through_z, result)
    if opts.geojson:
        from .geojson import write_geojson

        path = unique_path(out_dir / f"{stem}_objects.geojson")
        result.written.append(write_geojson(path, features))


def _page_objects(
    stack,
    labels,
    masks,
    names: list[str],
    meta: dict,
    opts: SegmentOptions,
    through_z: bool,
    result: FileResult,
) -> list[dict]:
    """Per-page object rows and summaries (unless the objects are 3-D), and the GeoJSON features."""
    from .postprocess import object_classes, object_table

    features: list[dict] = []
    for page, lab in enumerate(labels if opts.geojson or not through_z else []):
        rows = object_table(lab, stack.data[page, 0], pixel_size=stack.pixel_size, unit=stack.unit)
        summary = {
            "file": stack.path.name,
            "page": page,
            "objects": len(rows),
            "foreground_fraction": float(np.count_nonzero(masks[page])) / masks[page].size,
        }
        if len(names) >= 2:  # class column, and the object count of every foreground class
            rows = object_classes(rows, lab, masks[page], names)
            summary.update(
                {
                    f"objects_{n.replace(' ', '_')}": sum(r["class_index"] == c for r in rows)
                    for c, n in enumerate(names)
                    if c
                }
            )
        if not through_z:  # (a 3-D object's rows are above; its GeoJSON outlines stay per page)
            result.objects += [{"file": stack.path.name, "page": page, **r} for r in rows]
            result.summary.append(summary)
        if opts.geojson:
            features += _features(lab, rows, names, meta, page if len(labels) > 1 else None)
    return features


def _features(
    labels: np.ndarray, rows: list[dict], names: list[str], meta: dict, page: int | None
) -> list[dict]:
    """QuPath detections of one page, each classified by its class name in the mask's colour."""
    from .geojson import page_features
    from .io.write import class_lut

    lut = class_lut(max(len(names), 2), meta.get("palette") if len(names) >= 2 else None)
    colours = {name: lut[:, max(index, 1)].tolist() for index, name in enumerate(names)}
    return page_features(labels, rows, class_name=names[-1], colours=colours, page=page)


def _write_labels(path: Path, labels: np.ndarray, stack) -> Path:
    """uint16 label images (ImageJ) with a distinct-colour lookup table (labels 1-255, shown over
    0..255); above 65,535 objects float32, which ImageJ also reads exactly."""
    from .io.write import write_mask, write_tiff
    from .label_lut import label_display

    if stack.geometry is not None:  # NIfTI / DICOM in: NIfTI labels on the input's grid
        from .volumes import write_volume_mask

        return write_volume_mask(path.parent, stack, labels, "_labels")
    if labels.max(initial=0) <= np.iinfo(np.uint16).max:
        return write_mask(
            path,
            labels.astype(np.uint16),
            resolution=stack.resolution,
            unit=stack.unit,
            calibration=stack.calibration,
            imagej_extra=label_display(),
        )
    log.warning("'%s' has more than 65,535 objects: labels written as float32", stack.path.name)
    return write_tiff(
        path,
        labels.astype(np.float32),
        resolution=stack.resolution,
        unit=stack.unit,
        calibration=stack.calibration,
    )


def _display(page: np.ndarray) -> np.ndarray:
    """A (C, H, W) page as 8-bit grey for overlays (percentile-scaled)."""
    from .normalisation import normalise

    grey = normalise(page[:1].astype(np.float32))[0]
    return (np.clip(grey, 0, 1) * 255).astype(np.uint8)


def save_attention(model, stack, opts: SegmentOptions, out_dir: Path, result: FileResult) -> None:
    """Every attention gate's map of every page: a heat map PNG over the image and the float TIFF."""
    from types import SimpleNamespace

    from .attention import attention_maps, heatmap_overlay
    from .io.atomic import unique_path
    from .io.write import write_png, write_tiff

    loaded = SimpleNamespace(models=model.networks, meta=model.meta, in_channels=model.in_channels)

    for page in range(stack.data.shape[0]):
        grey = _display(stack.data[page])
        for level, amap in enumerate(attention_maps(loaded, stack.data[page], opts)):
            suffix = f"_p{page:03d}" if stack.data.shape[0] > 1 else ""
            stem = f"{stack.path.stem}{suffix}_attention{level + 1}"
            path = unique_path(out_dir / f"{stem}.png")  # heat map over the image, for viewing
            result.written.append(write_png(path, heatmap_overlay(grey, amap)))
            raw = unique_path(out_dir / f"{stem}.tif")  # the float map, for analysis
            result.written.append(write_tiff(raw, amap.astype(np.float32)))

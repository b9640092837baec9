"""Listing a folder's images (natural order; hidden and system files skipped) and naming what in
it cannot be read, with the fix."""

from __future__ import annotations

import re
from pathlib import Path

from paulow.errors import EmptyFolderError

from .stack import SUPPORTED_EXTENSIONS

_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})


def natural_sort_key(name: str | Path) -> tuple:
    """Sort key that orders `img2` before `img10` (case-insensitive, by stem then extension)."""
    path = Path(name)
    parts = re.split(r"(\d+)", path.stem.lower())
    numbered = tuple(int(p) if i % 2 else p for i, p in enumerate(parts))
    return numbered, path.suffix.lower(), path.name


def _is_visible_file(path: Path) -> bool:
    name = path.name
    return path.is_file() and not name.startswith(".") and name.lower() not in _IGNORED_NAMES


def _visible_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise EmptyFolderError(f"folder '{folder}' does not exist: create it and put the images in it")
    return sorted((p for p in folder.iterdir() if _is_visible_file(p)), key=natural_sort_key)


def list_images(folder: str | Path) -> list[Path]:
    """Supported images directly in `folder`, natural-sorted; hidden and system files ignored.

    NIfTI files (`.nii`, `.nii.gz`) and DICOM series (a sub-folder of `.dcm` slices) are one input each.
    Returns an empty list for an empty folder; raises `EmptyFolderError` if it does not exist.
    """
    from ..volumes import is_dicom_series, is_nifti

    files = [p for p in _visible_files(folder) if p.suffix.lower() in SUPPORTED_EXTENSIONS or is_nifti(p)]
    series = [p for p in Path(folder).iterdir() if not p.name.startswith(".") and is_dicom_series(p)]
    return sorted(files + series, key=natural_sort_key)


def list_unusable(folder: str | Path) -> list[tuple[Path, str]]:
    """Entries named like images that are not readable files (a broken link, a folder, a pipe),
    each with the reason and the fix, so that no input is skipped without a word."""
    found = []
    for p in sorted(Path(folder).iterdir(), key=natural_sort_key):
        if p.name.startswith(".") or p.suffix.lower() not in SUPPORTED_EXTENSIONS or p.is_file():
            continue
        if p.is_symlink() and not p.exists():
            found.append((p, "a link whose target is missing: fix or remove the link"))
        elif p.is_dir():
            found.append((p, "a folder, not an image: move the images inside it into this folder"))
        else:
            found.append((p, "not a regular file: replace it with the image file itself"))
    return found


VENDOR_FORMATS = (".czi", ".nd2", ".lif", ".oib", ".oif", ".ims", ".vsi", ".dv", ".sld")


def vendor_files_note(folder: str | Path) -> str:
    """'' or one sentence naming the microscope-vendor files in `folder` that cannot be read and
    what to do with them."""
    other = list_other_files(folder)
    slices = [p.name for p in other if p.suffix.lower() == ".dcm"]
    if slices:  # loose DICOM slices: a series is read from a folder of its own
        return (
            f"{len(slices)} DICOM slice(s) ({', '.join(slices[:3])}{', ...' if len(slices) > 3 else ''}) lie "
            "loose in the folder - put each series' .dcm files in a sub-folder of their own (e.g. series1/)"
        )
    found = [p.name for p in other if p.suffix.lower() in VENDOR_FORMATS]
    if not found:
        return ""
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return (
        f"{shown}: microscope files PAULow cannot read - open them in Fiji (Bio-Formats) and "
        "save as OME-TIFF (File > Save As > OME-TIFF), then put the .ome.tif files here"
    )


def list_other_files(folder: str | Path) -> list[Path]:
    """Visible files in `folder` that `list_images` skips (unsupported types), for messages."""
    from ..volumes import is_nifti

    return [
        p for p in _visible_files(folder) if p.suffix.lower() not in SUPPORTED_EXTENSIONS and not is_nifti(p)
    ]

"""Volumes: NIfTI files (`.nii`, `.nii.gz`, nibabel) and DICOM series (a folder of `.dcm` slices, see
`paulow.dicom`) read as `(pages, C, H, W)` stacks with their geometry, and masks written back as NIfTI
in the input's own geometry.

Voxel order is kept as stored (no reorientation): a NIfTI array `[i, j, k]` becomes pages `k`, rows `j`,
columns `i`, so a mask written with the same affine lies exactly on its image in any NIfTI viewer.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .errors import ShapeMismatchError
from .volume_geometry import DICOM_SUFFIX, VolumeGeometry
from .volume_geometry import unreadable as _unreadable

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_NIFTI_UNITS = {"mm": "mm", "micron": "micron", "meter": "m"}
_TO_NIFTI_UNITS = {"mm": "mm", "micron": "micron", "m": "meter"}


def is_nifti(path: str | Path) -> bool:
    """Whether the name ends in `.nii` or `.nii.gz` (any case)."""
    return Path(path).name.lower().endswith(NIFTI_SUFFIXES)


def is_dicom_series(path: str | Path) -> bool:
    """Whether `path` is a folder holding `.dcm` files (a DICOM series)."""
    path = Path(path)
    return path.is_dir() and any(p.suffix.lower() == DICOM_SUFFIX and p.is_file() for p in path.iterdir())


def is_volume(path: str | Path) -> bool:
    """A NIfTI file or a DICOM series folder."""
    return is_nifti(path) or is_dicom_series(path)


def volume_stem(path: str | Path) -> str:
    """The name outputs are called after: `case1.nii.gz` -> `case1`; a DICOM folder's own name."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name if path.is_dir() else path.stem


def read_volume(path: str | Path):
    """Read a NIfTI file or a DICOM series folder as an `ImageStack` with `geometry` set."""
    path = Path(path)
    if is_nifti(path):
        return read_nifti(path)
    from .dicom import read_dicom_series

    return read_dicom_series(path)


def _load_nifti(path: Path):
    import nibabel as nib

    if not path.is_file():
        raise _unreadable(path, "file not found", "Check the path and that the file was not moved.")
    try:
        return nib.load(str(path))
    except Exception as exc:  # every nibabel failure is a file the user can fix
        raise _unreadable(path, " ".join(str(exc).split()) or type(exc).__name__) from exc


def nifti_geometry(path: str | Path) -> VolumeGeometry:
    """The geometry of a NIfTI file, from its header only."""
    path = Path(path)
    image = _load_nifti(path)
    return _geometry_of(image, _voxel_shape(image.shape, path))


def _voxel_shape(shape: tuple, path: Path) -> tuple[int, int, int]:
    dims = list(shape) + [1] * (3 - len(shape))
    extra = [d for d in dims[4:] if d != 1]
    if len(dims) < 2 or extra:
        raise _unreadable(
            path,
            f"a {len(shape)}-D image of shape {tuple(shape)} is not a volume",
            "Save one volume per file (i, j, k) or (i, j, k, channels).",
        )
    return int(dims[0]), int(dims[1]), int(dims[2])


def _geometry_of(image, shape: tuple[int, int, int]) -> VolumeGeometry:
    header = image.header
    unit = _NIFTI_UNITS.get(header.get_xyzt_units()[0])
    codes = (int(header["qform_code"]), int(header["sform_code"]))
    return VolumeGeometry(np.asarray(image.affine, dtype=np.float64), shape, "nifti", unit, codes)


def read_nifti(path: str | Path):
    """A NIfTI file as an `ImageStack`: data `(k, C, j, i)` (a 4th dimension is channels), the file's
    dtype (its scaling applied), resolution from the voxel size, `geometry` from the header."""
    from .io.declared_size import check_declared_size
    from .io.stack import ImageStack

    path = Path(path)
    image = _load_nifti(path)
    shape = _voxel_shape(image.shape, path)
    check_declared_size(path, image.shape, image.get_data_dtype())
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # a truncated or corrupt data block
        raise _unreadable(path, f"the file looks truncated or corrupt ({exc})") from exc
    data = np.asarray(data).reshape(*shape, -1)  # (i, j, k, C)
    geometry = _geometry_of(image, shape)
    sx, sy, _ = (float(z) for z in (list(image.header.get_zooms()) + [1.0, 1.0])[:3])
    resolution = (1.0 / sx, 1.0 / sy) if sx > 0 and sy > 0 else None
    axes = "ZCYX" if data.shape[-1] > 1 else "ZYX"
    stack = np.ascontiguousarray(np.transpose(data, (2, 3, 1, 0)))
    return ImageStack(stack, path, axes, resolution, geometry.unit if resolution else None, geometry)


def write_nifti(path: str | Path, volume: np.ndarray, geometry: VolumeGeometry) -> Path:
    """Write a `(pages, H, W)` volume atomically as NIfTI (`.nii.gz` compressed) on `geometry`'s grid."""
    import nibabel as nib

    from .io.atomic import atomic_write_path

    volume = np.asarray(volume)
    if volume.ndim == 2:
        volume = volume[None]
    array = np.ascontiguousarray(np.transpose(volume, (2, 1, 0)))
    if array.shape != geometry.shape:
        raise ShapeMismatchError(
            f"'{path}': a volume of {array.shape} voxels (i, j, k) does not fit the "
            f"input's grid of {geometry.shape}"
        )
    image = nib.Nifti1Image(array, geometry.affine)
    image.header.set_xyzt_units(_TO_NIFTI_UNITS.get(geometry.unit or "", "unknown"))
    image.set_qform(geometry.affine, code=geometry.codes[0] or 1)
    image.set_sform(geometry.affine, code=geometry.codes[1] or 1)
    payload = image.to_bytes()
    if Path(path).name.lower().endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    with atomic_write_path(path) as temporary:
        temporary.write_bytes(payload)
    return Path(path)


def geometry_of_file(path: str | Path) -> VolumeGeometry | None:
    """The geometry of a NIfTI file or DICOM series (headers only), None for any other file."""
    path = Path(path)
    if is_nifti(path):
        return nifti_geometry(path)
    if is_dicom_series(path):
        from .dicom import series_geometry

        return series_geometry(path)
    return None


def check_mask_geometry(image_path: str | Path, mask_path: str | Path) -> None:
    """Refuse a volume mask whose voxel grid (shape or affine) differs from its image's, in one line."""
    image_geometry = geometry_of_file(image_path)
    mask_geometry = geometry_of_file(mask_path) if image_geometry is not None else None
    if image_geometry is None or mask_geometry is None or image_geometry.same_as(mask_geometry):
        return
    if image_geometry.shape != mask_geometry.shape:
        what = f"is {mask_geometry.shape} voxels but its image '{Path(image_path).name}' is {image_geometry.shape}"
    else:
        worst = float(np.abs(image_geometry.affine - mask_geometry.affine).max())
        what = (
            f"has another affine (position/orientation/spacing) than its image '{Path(image_path).name}' "
            f"(differs by up to {worst:.3g} mm)"
        )
    raise ShapeMismatchError(
        f"mask '{mask_path}' {what} - save the mask on the image's grid (same shape "
        "and affine, e.g. from the same viewer session) and train again"
    )


def write_volume_mask(out_dir: Path, stack, volume: np.ndarray, suffix: str) -> Path:
    """`<stem><suffix>.nii.gz` in `out_dir` (a free name) holding `volume` on the input's grid: uint8
    up to 255, else uint16/int32."""
    from .io.atomic import unique_path

    volume = np.asarray(volume)
    top = int(volume.max(initial=0))
    dtype = np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.int32
    path = unique_path(out_dir / f"{volume_stem(stack.path)}{suffix}.nii.gz")
    return write_nifti(path, volume.astype(dtype), stack.geometry)


def folder_fingerprint(folder: Path) -> tuple[int, int, str]:
    """(bytes, newest mtime in ns, SHA-256 over the names and contents) of a series folder's files."""
    import hashlib

    from .checkpoint import sha256_file

    digest, size, newest = hashlib.sha256(), 0, 0
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        st = path.stat()
        size, newest = size + st.st_size, max(newest, st.st_mtime_ns)
        digest.update(f"{path.name}\0{sha256_file(path)}\n".encode())
    return size, newest, digest.hexdigest()

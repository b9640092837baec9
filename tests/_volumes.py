"""Helpers for the volume tests: NIfTI files and DICOM series written with nibabel and pydicom."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def affine(spacing=(0.8, 0.7, 2.5), origin=(10.0, -20.0, 5.0)) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    affine[:2, :2] = np.array([[0.0, -spacing[1]], [spacing[0], 0.0]])  # rotated in-plane
    return affine


def write_nii(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))
    return path


def write_series(
    folder: Path, volume: np.ndarray, spacing=(0.5, 0.6), step=2.0, names=None, intercept=-1024, skip=()
) -> list[Path]:
    """A CT-like series: slice s of `volume` (s, rows, columns) at z = 100 + s * step."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    paths = []
    for s, plane in enumerate(volume):
        if s in skip:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.Modality = series, "CT"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-30.0, -40.0, 100.0 + s * step]
        ds.PixelSpacing = list(spacing)
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
        ds.PixelData = (plane - intercept).astype(np.uint16).tobytes()
        name = names[s] if names else f"slice{s:03d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        paths.append(folder / name)
    return paths

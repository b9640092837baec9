"""Read and write microscopy images, stacks and masks; pair images with their masks.

Every read returns `(pages, C, H, W)` in the file's dtype: TIFF axes come from tifffile's series
metadata (ImageJ, OME, shaped), Z/T/other axes are flattened into pages in file order, C and S
(samples, e.g. RGB) become channels. PNG, JPEG and BMP are read with Pillow (OpenCV for 16-bit
colour PNG, which Pillow reduces to 8 bits). Every write is atomic.

This package re-exports the public names of its modules, one job each: `stack` (the `ImageStack`),
`listing` (a folder's images), `read` (with `tiff_read`, `raster_read` and `declared_size`),
`pairing`, `atomic` (atomic writes, free names) and `write`.
"""

from __future__ import annotations

import tifffile  # noqa: F401  (kept as `paulow.io.tifffile`: tests patch its `imwrite` through it)

from .atomic import atomic_write_path, before_replace, unique_path
from .declared_size import FLOAT32_COPIES, check_declared_size, decode_limit
from .listing import (
    VENDOR_FORMATS,
    list_images,
    list_other_files,
    list_unusable,
    natural_sort_key,
    vendor_files_note,
)
from .pairing import PairingWarning, pair_images_masks, pairing_key
from .read import read_image, read_mask, read_mask_stack
from .stack import (
    RASTER_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    TIFF_EXTENSIONS,
    ImageStack,
    count_nonfinite,
    has_alpha,
    image_info,
)
from .write import binary_to_uint8, class_lut, write_label_tiff, write_mask, write_png, write_tiff

__all__ = [
    "FLOAT32_COPIES",
    "RASTER_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "TIFF_EXTENSIONS",
    "VENDOR_FORMATS",
    "ImageStack",
    "PairingWarning",
    "atomic_write_path",
    "before_replace",
    "binary_to_uint8",
    "check_declared_size",
    "class_lut",
    "count_nonfinite",
    "decode_limit",
    "has_alpha",
    "image_info",
    "list_images",
    "list_other_files",
    "list_unusable",
    "natural_sort_key",
    "pair_images_masks",
    "pairing_key",
    "read_image",
    "read_mask",
    "read_mask_stack",
    "unique_path",
    "vendor_files_note",
    "write_label_tiff",
    "write_mask",
    "write_png",
    "write_tiff",
]

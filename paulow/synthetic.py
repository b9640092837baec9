"""Reproducible synthetic fluorescence images with exact masks, for the demo and the tests.

Every generator takes a `seed` and draws from its own `numpy.random.Generator`: the same arguments
always give the same arrays. The imaging model: objects of varied brightness on a dim background
with a linear gradient, blurred by a Gaussian PSF, then Poisson (shot) and Gaussian (read) noise.
8-bit images have a background of 20 and signal up to 200 counts; 16-bit images use a real 16-bit
range (background 300, signal up to 4000), not an 8-bit image scaled by 257.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from paulow.errors import UsageError
from paulow.io import binary_to_uint8, write_mask, write_tiff

# background and full-brightness signal, in counts above zero, per bit depth
_LEVELS = {8: (20.0, 200.0), 16: (300.0, 4000.0)}
_DTYPES = {8: np.uint8, 16: np.uint16}
_AREA_PER_NUCLEUS = 1100  # pixels: about 15 nuclei in 128 x 128, some 15-30 % foreground

Size = tuple[int, int]
Pair = tuple[np.ndarray, np.ndarray]


def _check(size: Size, bit_depth: int, seed: int) -> None:
    if bit_depth not in _LEVELS:
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if seed is None:
        raise ValueError("a seed is required: synthetic images must be reproducible")
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"size must be (H, W) with both at least 8, got {size}")


def _smooth_noise(rng: np.random.Generator, size: Size, sigma: float) -> np.ndarray:
    """A smooth random field with mean 0 and standard deviation 1 (texture, uneven staining)."""
    field = ndimage.gaussian_filter(rng.standard_normal(size), sigma)
    return (field - field.mean()) / (field.std() + 1e-12)


def _background(rng: np.random.Generator, size: Size, level: float, ramp: float) -> np.ndarray:
    """A constant level plus a linear ramp of height `ramp` across the image, in a random
    direction."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    along = np.cos(angle) * xx / size[1] + np.sin(angle) * yy / size[0]
    along = (along - along.min()) / (np.ptp(along) + 1e-12)
    return level + ramp * along


def _render(
    rng: np.random.Generator, signal: np.ndarray, bit_depth: int, noise: float, gradient: float, blur: float
) -> np.ndarray:
    """Blur the signal (the PSF), add the background, shot and read noise; quantise."""
    background, scale = _LEVELS[bit_depth]
    clean = ndimage.gaussian_filter(signal * scale, blur) if blur > 0 else signal * scale
    clean = clean + _background(rng, signal.shape, background, gradient * scale)
    gain = scale / _LEVELS[8][1]  # counts per photon: same relative shot noise at both depths
    noisy = rng.poisson(np.maximum(clean, 0.0) / gain) * gain
    noisy = noisy + rng.normal(0.0, noise * scale, signal.shape)
    maximum = np.iinfo(_DTYPES[bit_depth]).max
    return np.clip(np.rint(noisy), 0, maximum).astype(_DTYPES[bit_depth])


def _ellipse(size: Size, centre: tuple[float, float], axes: tuple[float, float], angle: float) -> np.ndarray:
    """Boolean mask of pixels whose centres lie inside a rotated ellipse."""
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    dy, dx = yy - centre[0], xx - centre[1]
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    return (u / axes[0]) ** 2 + (v / axes[1]) ** 2 <= 1.0


def _nucleus_centres(rng: np.random.Generator, size: Size, radii: np.ndarray) -> list[tuple]:
    """Centres that mostly keep nuclei apart (some still touch, as in real images)."""
    centres: list[tuple[float, float]] = []
    for radius in radii:
        for _ in range(30):
            centre = (rng.uniform(0, size[0]), rng.uniform(0, size[1]))
            if all(
                np.hypot(centre[0] - c[0], centre[1] - c[1]) > 0.9 * (radius + r)
                for c, r in zip(centres, radii)
            ):
                break
        centres.append(centre)
    return centres


def nuclei_image(
    size: Size = (128, 128),
    n: int | None = None,
    radius_range: tuple[float, float] = (4, 12),
    seed: int = 0,
    bit_depth: int = 8,
    noise: float = 0.03,
    background_gradient: float = 0.15,
    brightness_range: tuple[float, float] = (0.15, 1.0),
    blur: float = 1.0,
) -> Pair:
    """Round and elliptical nuclei of varied size, brightness and texture.

    Returns `(image (H, W) uint8|uint16, mask (H, W) uint8 0/1)`. `n` defaults to one nucleus per
    1100 pixels; `noise` is the read-noise standard deviation and `background_gradient` the
    background ramp, both as fractions of the full signal; `blur` is the PSF sigma in pixels.
    """
    _check(size, bit_depth, seed)
    rng = np.random.default_rng(seed)
    count = n if n is not None else max(1, round(size[0] * size[1] / _AREA_PER_NUCLEUS))
    radii = rng.uniform(*radius_range, count)
    centres = _nucleus_centres(rng, size, radii)
    texture = 1.0 + 0.12 * _smooth_noise(rng, size, 2.0)
    signal = np.zeros(size)
    mask = np.zeros(size, dtype=bool)
    for centre, radius in zip(centres, radii):
        inside = _ellipse(size, centre, (radius, radius * rng.uniform(0.7, 1.0)), rng.uniform(0, np.pi))
        brightness = rng.uniform(*brightness_range)
        signal[inside] = np.maximum(signal[inside], brightness * texture[inside])
        mask |= inside
    image = _render(rng, signal, bit_depth, noise, background_gradient, blur)
    return image, mask.astype(np.uint8)


def _filament_path(rng: np.random.Generator, size: Size) -> np.ndarray:
    """Points (y, x) half a pixel apart along a smooth random curve."""
    length = rng.uniform(0.2, 0.6) * np.sqrt(size[0] * size[1])
    steps = max(2, int(length / 0.5))
    turn = rng.normal(0.0, 0.02)  # a steady bend plus a slow random wander
    angles = rng.uniform(0, 2 * np.pi) + np.cumsum(turn + rng.normal(0.0, 0.03, steps))
    start = np.array([rng.uniform(0, size[0]), rng.uniform(0, size[1])])
    offsets = np.cumsum(0.5 * np.stack([np.sin(angles), np.cos(angles)], axis=1), axis=0)
    return start + offsets


def _thick_line(size: Size, points: np.ndarray, width: float) -> np.ndarray:
    """Pixels within `width / 2` of the curve's rasterised centre line (the centre line itself
    always included)."""
    rows, cols = np.rint(points).astype(int).T
    keep = (rows >= 0) & (rows < size[0]) & (cols >= 0) & (cols < size[1])
    centre = np.zeros(size, dtype=bool)
    centre[rows[keep], cols[keep]] = True
    if not centre.any():
        return centre
    return ndimage.distance_transform_edt(~centre) <= max(width / 2.0, 0.5)


def filaments_image(
    size: Size = (128, 128),
    n: int | None = None,
    width_range: tuple[float, float] = (1.0, 3.0),
    seed: int = 0,
    bit_depth: int = 8,
    noise: float = 0.03,
    background_gradient: float = 0.15,
    brightness_range: tuple[float, float] = (0.3, 1.0),
    blur: float = 0.8,
    foreground_range: tuple[float, float] = (0.035, 0.06),
) -> Pair:
    """Thin curved filaments (1-3 pixels wide) of varied brightness.

    Returns `(image (H, W) uint8|uint16, mask (H, W) uint8 0/1)`. Without `n`, filaments are added
    until the foreground reaches a fraction drawn from `foreground_range` (never above its upper
    end). Other arguments as in `nuclei_image`.
    """
    _check(size, bit_depth, seed)
    rng = np.random.default_rng(seed)
    target = rng.uniform(*foreground_range)
    texture = 1.0 + 0.15 * _smooth_noise(rng, size, 3.0)
    signal = np.zeros(size)
    mask = np.zeros(size, dtype=bool)
    for _ in range(n if n is not None else 500):
        line = _thick_line(size, _filament_path(rng, size), rng.uniform(*width_range))
        brightness = rng.uniform(*brightness_range)
        if n is None and (mask | line).mean() > foreground_range[1]:
            continue
        signal[line] = np.maximum(signal[line], brightness * texture[line])
        mask |= line
        if n is None and mask.mean() >= target:
            break
    image = _render(rng, signal, bit_depth, noise, background_gradient, blur)
    return image, mask.astype(np.uint8)


def classes_image(
    size: Size = (64, 64),
    classes: int = 3,
    per_class: int = 3,
    radius_range: tuple[float, float] = (5, 9),
    seed: int = 0,
    bit_depth: int = 8,
    noise: float = 0.03,
    background_gradient: float = 0.1,
    blur: float = 0.8,
) -> Pair:
    """Objects of `classes - 1` foreground classes, told apart by shape and brightness: odd classes
    are discs, even classes squares, and class c has brightness `0.3 + 0.7 (c - 1) / (K - 2)`.

    Returns `(image (H, W), mask (H, W) uint8 class indices 0..K-1)`; later objects cover earlier
    ones, so the mask is exactly what is drawn. Other arguments as in `nuclei_image`.
    """
    _check(size, bit_depth, seed)
    if classes < 2:
        raise ValueError(f"classes must be at least 2 (background + one class), got {classes}")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(1, classes), per_class)
    radii = rng.uniform(*radius_range, labels.size)
    centres = _nucleus_centres(rng, size, radii)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    signal, mask = np.zeros(size), np.zeros(size, dtype=np.uint8)
    for label, centre, radius in zip(rng.permutation(labels), centres, radii):
        if label % 2:
            inside = _ellipse(size, centre, (radius, radius), 0.0)
        else:
            inside = (np.abs(yy - centre[0]) <= radius * 0.8) & (np.abs(xx - centre[1]) <= radius * 0.8)
        signal[inside] = 0.3 + 0.7 * (label - 1) / max(classes - 2, 1)
        mask[inside] = label
    return _render(rng, signal, bit_depth, noise, background_gradient, blur), mask


GENERATORS: dict[str, Callable[..., Pair]] = {
    "nuclei": nuclei_image,
    "filaments": filaments_image,
    "classes": classes_image,
}
INDEX_MASKS = {"classes"}  # kinds whose masks are class indices, written as they are (not 0/255)


def _generator(kind: str) -> Callable[..., Pair]:
    if kind not in GENERATORS:
        raise UsageError(f"unknown synthetic image kind '{kind}': use one of {', '.join(GENERATORS)}")
    return GENERATORS[kind]


def _child_seeds(seed: int, count: int) -> list[int]:
    """Independent, reproducible seeds for the pages of a stack or the files of a data set."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(count)]


def make_stack(kind: str, pages: int, size: Size = (128, 128), seed: int = 0, **kwargs) -> Pair:
    """A `(pages, H, W)` image stack and its `(pages, H, W)` uint8 0/1 masks; each page is an
    independent image of `kind` ("nuclei" or "filaments"); `kwargs` go to the generator."""
    generate = _generator(kind)
    slices = [generate(size=size, seed=s, **kwargs) for s in _child_seeds(seed, pages)]
    return np.stack([s[0] for s in slices]), np.stack([s[1] for s in slices])


def _targets(
    folder_images: Path, folder_masks: Path, n: int, image_name: str, mask_name: str, overwrite: bool
) -> list[tuple[Path, Path]]:
    targets = [
        (folder_images / image_name.format(i=i), folder_masks / mask_name.format(i=i))
        for i in range(1, n + 1)
    ]
    existing = [p for pair in targets for p in pair if p.exists()]
    if existing and not overwrite:
        raise UsageError(
            f"'{existing[0]}' already exists: write the synthetic data set to empty "
            "folders (or pass overwrite=True)"
        )
    return targets


def write_dataset(
    folder_images: str | Path,
    folder_masks: str | Path,
    kind: str = "nuclei",
    n: int = 10,
    size: Size = (128, 128),
    seed: int = 0,
    bit_depth: int = 8,
    stack_pages: int | None = None,
    image_name: str = "image{i}.tif",
    mask_name: str = "mask{i}.tif",
    overwrite: bool = False,
    **kwargs,
) -> list[tuple[Path, Path]]:
    """Write `n` synthetic images (numbered from 1) and their masks as TIFFs: uint8 0/255, or
    class indices 0..K-1 for `kind="classes"` (`classes=K` goes to `classes_image`).

    With `stack_pages`, each file is a stack of that many pages. `kwargs` go to the generator.
    Refuses to overwrite existing files unless `overwrite=True`. Returns the (image, mask) paths.
    """
    _generator(kind)
    targets = _targets(Path(folder_images), Path(folder_masks), n, image_name, mask_name, overwrite)
    for (image_path, mask_path), file_seed in zip(targets, _child_seeds(seed, n)):
        if stack_pages:
            image, mask = make_stack(kind, stack_pages, size, file_seed, bit_depth=bit_depth, **kwargs)
        else:
            image, mask = _generator(kind)(size=size, seed=file_seed, bit_depth=bit_depth, **kwargs)
        write_tiff(image_path, image)
        write_mask(mask_path, mask if kind in INDEX_MASKS else binary_to_uint8(mask))
    return targets


Ellipsoid = tuple[tuple[float, float, float], tuple[float, float, float]]  # centre (z, y, x), radii (z, y, x)


def ellipsoid_labels(shape: tuple[int, int, int], ellipsoids: list[Ellipsoid]) -> np.ndarray:
    """(Z, H, W) int32 labels: voxel centres inside ellipsoid i (in voxels) get i + 1; where two
    overlap the voxel goes to the nearer centre (in radius units), so touching objects share a face."""
    grid = np.indices(shape, dtype=np.float64)
    best = np.full(shape, np.inf)
    labels = np.zeros(shape, dtype=np.int32)
    for index, (centre, radii) in enumerate(ellipsoids, start=1):
        distance = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii))
        take = (distance <= 1.0) & (distance < best)
        labels[take], best[take] = index, distance[take]
    return labels


def ellipsoid_volume(
    shape: tuple[int, int, int] = (12, 64, 64),
    n: int = 4,
    seed: int = 0,
    radii: tuple[float, float] = (5.0, 9.0),
    z_radius: float = 3.5,
    bit_depth: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """A (Z, H, W) image of `n` separate ellipsoids (in-plane radii drawn from `radii` px, `z_radius`
    sections) and their exact (Z, H, W) int32 labels 1..n. Centres are drawn until no two are closer
    than the sum of their radii plus 2 px (raises `UsageError` when they do not fit)."""
    rng = np.random.default_rng(seed)
    chosen: list[Ellipsoid] = []
    for _ in range(2000):
        if len(chosen) == n:
            break
        r = (z_radius, *rng.uniform(*radii, size=2))
        centre = (
            rng.uniform(z_radius, shape[0] - 1 - z_radius),
            rng.uniform(r[1], shape[1] - 1 - r[1]),
            rng.uniform(r[2], shape[2] - 1 - r[2]),
        )
        if all(
            np.hypot(centre[1] - c[1], centre[2] - c[2]) > max(r[1:]) + max(q[1:]) + 2
            or abs(centre[0] - c[0]) > r[0] + q[0] + 1
            for c, q in chosen
        ):
            chosen.append((centre, r))
    if len(chosen) < n:
        raise UsageError(
            f"{n} ellipsoids do not fit in a volume of {shape}: ask for fewer or a larger volume"
        )
    labels = ellipsoid_labels(shape, chosen)
    background, signal = _LEVELS[bit_depth]
    image = background + signal * ndimage.gaussian_filter((labels > 0).astype(np.float64), 1.0)
    image = image + rng.normal(0, 0.05 * signal, size=shape)
    return np.clip(image, 0, np.iinfo(_DTYPES[bit_depth]).max).astype(_DTYPES[bit_depth]), labels

"""Colour masks -> class indices: the palette file (one colour per class) and the mapping through it.

A palette file is text, one line per class, class 0 (the background) first: `R G B [name]` (numbers
0-255, separated by spaces or commas) or `#RRGGBB [name]`. `#` starts a comment; blank lines are
ignored. `palette.txt` in a masks folder is used for K >= 2 classes without being asked for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ShapeMismatchError, UsageError

log = logging.getLogger("paulow")

PALETTE_FILE = "palette.txt"
_HEX = re.compile(r"#([0-9a-fA-F]{6})(?=[\s,]|$)")
_LINE_FORMAT = (
    "write 'R G B [name]' (three numbers 0-255, e.g. '255 0 0 nucleus') or '#RRGGBB [name]', "
    "one class per line, background (class 0) first"
)
_SHOWN = 5  # colours named in a message

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Palette:
    """One colour per class (class 0 first), the class names when the file gives them, and where it
    came from, as messages name it (`the palette 'path/palette.txt'`)."""

    colours: tuple[Colour, ...]
    names: tuple[str, ...] = ()
    source: str = "the palette"

    @property
    def classes(self) -> int:
        return len(self.colours)

    def as_list(self) -> list[list[int]]:
        """`[[R, G, B], ...]`, as stored in a model file."""
        return [list(c) for c in self.colours]


def _parse_line(text: str) -> tuple[Colour, str] | None:
    """(colour, name) of one palette line; None for a blank or comment line; ValueError if bad."""
    text = text.strip()
    hex_colour = _HEX.match(text)
    if hex_colour:
        value = int(hex_colour.group(1), 16)
        colour, rest = (value >> 16, (value >> 8) & 255, value & 255), text[hex_colour.end() :]
    else:
        text = text.split("#", 1)[0]
        tokens = [t for t in re.split(r"[\s,]+", text) if t]
        if not tokens:
            return None
        if len(tokens) < 3 or not all(t.isdigit() and int(t) <= 255 for t in tokens[:3]):
            raise ValueError
        colour, rest = (int(tokens[0]), int(tokens[1]), int(tokens[2])), " ".join(tokens[3:])
    name = " ".join(t for t in re.split(r"[\s,]+", rest.split("#", 1)[0]) if t)
    return colour, name


def read_palette(path: str | Path, classes: int | None = None) -> Palette:
    """The palette in `path`; a `UsageError` naming the file (and line) for a missing file, a bad
    line, a colour listed twice, names given for some classes only, or a count other than `classes`."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"palette file '{path}' not found: check --palette (one 'R G B name' line per class)"
        )
    colours: list[Colour] = []
    names: list[str] = []
    lines: dict[Colour, int] = {}
    from .textfile import read_text

    for number, text in enumerate(read_text(path, "palette file", "check --palette").splitlines(), start=1):
        try:
            parsed = _parse_line(text)
        except ValueError:
            raise UsageError(
                f"'{path}' line {number}: '{text.strip()}' is not a colour: {_LINE_FORMAT}"
            ) from None
        if parsed is None:
            continue
        colour, name = parsed
        if colour in lines:
            raise UsageError(
                f"'{path}' line {number}: colour {_rgb(colour)} is listed twice (lines "
                f"{lines[colour]} and {number}): give each class its own colour"
            )
        lines[colour] = number
        colours.append(colour)
        names.append(name)
    named = [n for n in names if n]
    if named and len(named) != len(names):
        missing = names.index("")
        raise UsageError(
            f"'{path}': class {missing} ({_rgb(colours[missing])}) has no name but other classes "
            "do: name every class or none"
        )
    palette = Palette(tuple(colours), tuple(names) if named else (), f"the palette '{path}'")
    if classes is not None:
        check_count(palette, classes)
    elif not colours:
        raise UsageError(f"'{path}' lists no colour: {_LINE_FORMAT}")
    return palette


def check_count(palette: Palette, classes: int) -> None:
    """A `UsageError` when the palette does not list exactly one colour per class."""
    if palette.classes != classes:
        raise UsageError(
            f"{palette.source} lists {palette.classes} colour(s) for {classes} classes: one colour "
            "per class, background (class 0) first (or change --classes)"
        )


def from_colours(
    colours: Sequence[Sequence[int]], classes: int | None = None, source: str = "the palette"
) -> Palette:
    """A palette from `[[R, G, B], ...]` (a model file's, or an API option), checked like a file."""
    checked: list[Colour] = []
    for index, colour in enumerate(colours):
        values = list(colour) if isinstance(colour, (list, tuple)) else []
        if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in values):
            raise UsageError(f"{source}: class {index} is {colour!r}, not three numbers 0-255 ([R, G, B])")
        rgb = (int(values[0]), int(values[1]), int(values[2]))
        if rgb in checked:
            raise UsageError(f"{source}: colour {_rgb(rgb)} is listed twice: give each class its own colour")
        checked.append(rgb)
    palette = Palette(tuple(checked), (), source)
    if classes is not None:
        check_count(palette, classes)
    return palette


def as_palette(value, classes: int) -> Palette:
    """The `palette` option (a file path, or `[[R, G, B], ...]`) for masks read with `classes` classes."""
    if classes < 2:
        raise UsageError(
            f"--palette {value if isinstance(value, (str, Path)) else '[...]'} maps colour masks to "
            "classes, but these masks are read as binary: add --classes K (K >= 2), or leave "
            "--palette out"
        )
    if isinstance(value, (str, Path)):
        return read_palette(value, classes)
    return from_colours(value, classes)


def find_palette(
    mask_dir: str | Path, classes: int, given: str | Path | None = None, fallback: Palette | None = None
) -> Palette | None:
    """The palette for a mask folder read with `classes` classes: the `given` file (--palette), else
    `palette.txt` in `mask_dir`, else `fallback` (a model's); None for binary masks (K < 2)."""
    if given is not None:
        return as_palette(given, classes)
    beside = Path(mask_dir) / PALETTE_FILE
    if classes < 2:
        if beside.is_file():
            log.warning(
                "'%s' is not used: the masks are read as binary (one class); add --classes K to map "
                "their colours to K classes",
                beside,
            )
        return None
    if beside.is_file():
        return read_palette(beside, classes)
    if fallback is not None:
        check_count(fallback, classes)
    return fallback


def palette_names(palette: Palette | None, classes: int) -> list[str]:
    """The palette's class names when it names every class, else []."""
    if palette is None or not palette.names:
        return []
    if len(palette.names) != classes:  # read_palette checked the count; a model's palette has no names
        raise UsageError(
            f"{palette.source} names {len(palette.names)} class(es) for {classes} classes: one "
            "line per class, background (class 0) first"
        )
    return list(palette.names)


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def _codes(rgb: np.ndarray) -> np.ndarray:
    """`(pages, 3, H, W)` colours -> `(pages, H, W)` int64 codes, one per colour (16 bits a channel)."""
    r, g, b = (rgb[:, i].astype(np.int64) for i in range(3))
    return (r << 32) | (g << 16) | b


def _decode(code: int) -> Colour:
    return (int(code) >> 32, (int(code) >> 16) & 0xFFFF, int(code) & 0xFFFF)


def _rgb(colour: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(v)) for v in colour) + ")"


def to_classes(mask: np.ndarray, palette: Palette, mask_path: str | Path, alpha: bool = False) -> np.ndarray:
    """Map a colour mask `(pages, C >= 3, H, W)` (R, G, B first; with `alpha`, channel 3 is opacity and a
    fully transparent pixel is background) to `(pages, H, W)` uint8 class indices through `palette`.

    A colour not in the palette is a `ShapeMismatchError` naming the mask, the unknown colours (the
    most frequent, with pixel counts) and the fix."""
    codes = _codes(mask[:, :3])
    table = _codes(np.array(palette.colours, dtype=np.int64).T[None, :, :, None])[0, :, 0]
    order = np.argsort(table)
    sorted_table = table[order]
    position = np.minimum(np.searchsorted(sorted_table, codes), len(table) - 1)
    known = sorted_table[position] == codes
    transparent = mask[:, 3] == 0 if alpha else np.zeros(codes.shape, dtype=bool)
    unknown = ~known & ~transparent
    if unknown.any():
        raise ShapeMismatchError(_unknown_message(codes[unknown], palette, Path(mask_path)))
    classes = order[position].astype(np.uint8)
    classes[transparent] = 0
    return classes


def _unknown_message(codes: np.ndarray, palette: Palette, mask_path: Path) -> str:
    values, counts = np.unique(codes, return_counts=True)
    top = np.argsort(-counts, kind="stable")[:_SHOWN]
    shown = ", ".join(f"{_rgb(_decode(values[i]))} {int(counts[i])} px" for i in top)
    more = f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else ""
    return (
        f"mask '{mask_path.name}' has {len(values)} colour(s) not in {palette.source}: "
        f"{shown}{more} — add a line for each class colour to the palette, or repaint those pixels in "
        "a palette colour (antialiased or blurred edges make in-between colours: paint with a hard brush)"
    )


def colour_mask_error(mask: np.ndarray, mask_path: str | Path, classes: int) -> ShapeMismatchError:
    """The error for a mask whose channels differ (a colour image) in a K-class task without a palette."""
    mask_path = Path(mask_path)
    pixels = np.moveaxis(mask, 1, -1).reshape(-1, mask.shape[1])
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    top = np.argsort(-counts, kind="stable")[:_SHOWN]
    shown = ", ".join(_rgb(colours[i]) for i in top) + (", ..." if len(colours) > _SHOWN else "")
    return ShapeMismatchError(
        f"mask '{mask_path.name}' is a colour image ({len(colours)} distinct colours: {shown}) but a {classes}-class "
        f"task needs class indices 0..{classes - 1} — save index masks (one grey value per class, 0 = background), "
        f"or put a {PALETTE_FILE} in '{mask_path.parent}' (one 'R G B name' line per class, background first) "
        "or pass --palette FILE"
    )


def read_class_mask(path: str | Path, classes: int, palette: Palette | None = None) -> np.ndarray:
    """A mask as `(pages, H, W)` integers for a `classes`-class task.

    K < 2: `io.read_mask`, a JPEG or grey-edged mask binarised at half its maximum
    (`grey_edges.clean_binary_mask`). K >= 2: a one-channel mask (or one whose channels are all equal)
    holds class indices; a colour mask is mapped through `palette` (palette PNGs by their colours),
    and without one it is an error naming the file and the fix."""
    from .grey_edges import clean_binary_mask
    from .io.read import read_mask, read_mask_stack
    from .io.stack import has_alpha

    if classes < 2:
        from .swapped import image_like

        raw = read_mask(path)  # an image (e.g. a JPEG photo) stays raw for the swapped-folders check
        return raw if image_like(raw) else clean_binary_mask(raw, path)
    stack = read_mask_stack(path, palette_indices=palette is None)
    data = stack.data
    if palette is not None and data.shape[1] >= 3:
        return to_classes(data, palette, path, alpha=has_alpha(stack))
    if data.shape[1] == 1 or np.all(data == data[:, :1]):
        return data[:, 0]
    raise colour_mask_error(data, path, classes)

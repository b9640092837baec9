"""One label per object across chunks: 8-connected components of a mask computed chunk by chunk.

Each chunk labels its own core (`local_components`) and keeps its four border lines. Objects of
neighbouring chunks that touch across a seam (face or diagonal contact, chunk corners included)
are joined by `scipy.sparse.csgraph.connected_components` on a graph whose nodes are the chunks'
local objects (`global_mapping`): its size is the number of local objects, never the label range.
Global IDs are deterministic: objects are numbered 1..N in the order of their first local object
(chunks in row-major order, local labels in raster order), after objects smaller than `min_size`
pixels (their whole area, summed over chunks) are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

ChunkIndex = tuple[int, int]


@dataclass
class ChunkObjects:
    """A chunk's local objects: count, areas (px, index = label - 1) and border lines."""

    count: int
    areas: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "count": np.array(self.count),
            "areas": self.areas,
            "top": self.top,
            "bottom": self.bottom,
            "left": self.left,
            "right": self.right,
        }

    @classmethod
    def from_arrays(cls, data) -> ChunkObjects:
        return cls(
            int(data["count"]), data["areas"], data["top"], data["bottom"], data["left"], data["right"]
        )


def local_components(mask: np.ndarray) -> tuple[np.ndarray, ChunkObjects]:
    """8-connected components (uint32, 1..n in raster order) of a chunk's 0/1 mask, and its record."""
    from scipy import ndimage

    labels, count = ndimage.label(mask != 0, structure=np.ones((3, 3), dtype=bool))
    labels = labels.astype(np.uint32, copy=False)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.int64)
    record = ChunkObjects(
        int(count), areas, labels[0].copy(), labels[-1].copy(), labels[:, 0].copy(), labels[:, -1].copy()
    )
    return labels, record


def _touching(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairs (label in a, label in b) of two facing border lines that touch (offset -1, 0 or +1)."""
    pairs = []
    for shift in (-1, 0, 1):
        lo, hi = max(0, shift), min(len(a), len(b) + shift)
        if hi <= lo:
            continue
        left, right = a[lo:hi], b[lo - shift : hi - shift]
        both = (left > 0) & (right > 0)
        pairs.append(np.stack([left[both], right[both]], axis=1))
    return np.unique(np.concatenate(pairs), axis=0) if pairs else np.zeros((0, 2), dtype=np.uint32)


def _edges(chunks: Mapping[ChunkIndex, ChunkObjects], offsets: dict[ChunkIndex, int]) -> np.ndarray:
    """Graph edges (global node ids) between touching objects of neighbouring chunks."""
    found = []

    def add(a: ChunkIndex, b: ChunkIndex, pairs: np.ndarray) -> None:
        if len(pairs):
            found.append(
                np.stack(
                    [
                        pairs[:, 0].astype(np.int64) - 1 + offsets[a],
                        pairs[:, 1].astype(np.int64) - 1 + offsets[b],
                    ],
                    axis=1,
                )
            )

    for (iy, ix), here in chunks.items():
        right, below = (iy, ix + 1), (iy + 1, ix)
        if right in chunks:
            add((iy, ix), right, _touching(here.right, chunks[right].left))
        if below in chunks:
            add((iy, ix), below, _touching(here.bottom, chunks[below].top))
        for dx, mine, theirs in ((1, -1, 0), (-1, 0, -1)):  # corners: diagonal contact only
            other = (iy + 1, ix + dx)
            if other in chunks:
                a, b = here.bottom[mine], chunks[other].top[theirs]
                if a and b:
                    add((iy, ix), other, np.array([[a, b]]))
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def global_mapping(
    chunks: Mapping[ChunkIndex, ChunkObjects], min_size: int = 0
) -> tuple[dict[ChunkIndex, int], np.ndarray]:
    """Each chunk's node offset and the table node -> global label (0: dropped as too small)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    offsets, total = {}, 0
    for index in sorted(chunks):
        offsets[index] = total
        total += chunks[index].count
    if total == 0:
        return offsets, np.zeros(0, dtype=np.uint32)
    edges = _edges(chunks, offsets)
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(total, total))
    _, component = connected_components(graph, directed=False)
    areas = np.concatenate([chunks[i].areas for i in sorted(chunks)])
    area = np.bincount(component, weights=areas)
    uniq, first = np.unique(component, return_index=True)
    order = uniq[np.argsort(first)]  # components in order of their first node
    kept = order[area[order] >= max(min_size, 1)]
    ids = np.zeros(len(uniq), dtype=np.uint32)
    ids[kept] = np.arange(1, len(kept) + 1, dtype=np.uint32)
    return offsets, ids[component]


def relabel(local: np.ndarray, offset: int, count: int, mapping: np.ndarray) -> np.ndarray:
    """A chunk's global labels from its local ones."""
    table = np.concatenate([np.zeros(1, dtype=np.uint32), mapping[offset : offset + count]])
    return table[local]

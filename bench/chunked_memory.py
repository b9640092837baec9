"""Peak memory and speed of the chunked engine (`Model.predict_file`) against today's whole-image
path (read the whole file, `Model.predict`, labels, write the mask TIFF), on synthetic uint16 images.

    python bench/chunked_memory.py [--sizes 4096 8192 16384 32768] [--formats tiff ome-zarr]
                                   [--whole-max 8192] [--chunk 1024] [--json OUT] [--keep DIR]

Each measurement runs in its own subprocess; its peak memory is the largest sum of the resident
set sizes of that process and all its descendants (sampled every 0.1 s with psutil; dask workers
run in-process by default, so there is one). The network is tiny (one fixed 3x3 convolution
that finds the synthetic bright discs) so that the 32k point finishes on 2 cores: the numbers show the engine's own memory and
overhead, not a real network's speed. The overhead ratio compares the two paths on the same image
and model in the same run: chunked MPix/s / whole-image MPix/s. Each row also has the measured run's CPU
seconds (user, system) and minor page faults, less sensitive to a loaded machine than the wall
time; `PAULOW_HEAP=arena|mmap|default` in the environment picks the engine's malloc setting
(`paulow.heap`; `arena` when unset). Sizes above `--whole-max` skip the
whole-image path (its float32 maps alone take 12 bytes per pixel per channel: 12 GiB at 32k).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

TILE = 512  # px: the synthetic files' TIFF tiles and zarr chunks


def tiny_model(overlap: float):
    """One fixed 3x3 convolution, logits = 8 x (local mean - 0.5): finds the bright discs."""
    from paulow.device import choose_wait_policy

    choose_wait_policy()  # as the command line does, before torch loads
    import torch
    from torch import nn

    from paulow.api import Model

    net = nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        net.weight.fill_(8 / 9)
        net.bias.fill_(-4.0)
    meta = {
        "in_channels": 1,
        "classes": 1,
        "patch": 256,
        "threshold": 0.5,
        "overlap": overlap,
        "normalisation": {"method": "percentile", "low": 1.0, "high": 99.8},
    }
    return Model([net], meta)


def synthetic_tile(size: int, ty: int, tx: int) -> np.ndarray:
    """One deterministic TILE x TILE block: noise and a few bright discs."""
    rng = np.random.default_rng(ty * 100_003 + tx)
    block = (rng.integers(0, 256, (TILE, TILE)) + 1000).astype(np.uint16)
    yy, xx = np.mgrid[:TILE, :TILE]
    for cy, cx, r in rng.integers(20, TILE - 20, (6, 3)):
        block[(yy - cy) ** 2 + (xx - cx) ** 2 <= (r % 18 + 3) ** 2] = 40000
    return block[: min(TILE, size - ty * TILE), : min(TILE, size - tx * TILE)]


def write_inputs(size: int, folder: Path, formats: list[str]) -> dict[str, Path]:
    """The synthetic image as a tiled BigTIFF and/or a one-level OME-Zarr, written tile by tile."""
    import tifffile
    import zarr

    n = -(-size // TILE)
    paths = {}
    if "tiff" in formats:
        paths["tiff"] = folder / f"synthetic_{size}.tif"

        def tiles():
            for ty in range(n):
                for tx in range(n):
                    tile = np.zeros((TILE, TILE), np.uint16)
                    part = synthetic_tile(size, ty, tx)
                    tile[: part.shape[0], : part.shape[1]] = part
                    yield tile

        tifffile.imwrite(
            paths["tiff"],
            tiles(),
            shape=(size, size),
            dtype=np.uint16,
            tile=(TILE, TILE),
            bigtiff=True,
            compression="zlib",
        )
    if "ome-zarr" in formats:
        paths["ome-zarr"] = folder / f"synthetic_{size}.ome.zarr"
        group = zarr.open_group(paths["ome-zarr"], mode="w", zarr_format=2)
        array = group.create_array("0", shape=(size, size), chunks=(TILE, TILE), dtype="uint16")
        for ty in range(n):
            for tx in range(n):
                array[ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE] = synthetic_tile(size, ty, tx)
        group.attrs["multiscales"] = [
            {
                "version": "0.4",
                "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                "datasets": [{"path": "0"}],
            }
        ]
    return paths


def child(mode: str, path: Path, out: Path, chunk: int, overlap: float, model_path: str = "") -> dict:
    """One measured run (inside the subprocess): the tiny network, or the model file `model_path`."""
    import resource

    if model_path:
        import paulow

        model = paulow.load_model(model_path)
    else:
        model = tiny_model(overlap)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if mode == "chunked":
        record = model.predict_file(path, out, chunk=chunk or None, format="ome-zarr")
        objects, chunk = record["objects"][0], record["settings"]["chunk"]
    else:
        from paulow.api import read_image, write_mask

        image = read_image(path)[0, 0]
        pred = model.predict(image)
        objects = int(pred.labels().max())
        write_mask(out / "mask.tif", pred.mask * np.uint8(255))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": time.perf_counter() - start,
        "objects": objects,
        "chunk": chunk,
        "cpu_user_s": round(after.ru_utime - before.ru_utime, 1),
        "cpu_system_s": round(after.ru_stime - before.ru_stime, 1),
        "minor_faults": after.ru_minflt - before.ru_minflt,
    }


def measure(
    mode: str, path: Path, out: Path, chunk: int, size: int, overlap: float, model_path: str = ""
) -> dict:
    """Run `child` in a subprocess; peak RSS of its process tree."""
    import psutil

    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        str(path),
        str(out),
        str(chunk),
        str(overlap),
        model_path,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, parent = 0, psutil.Process(proc.pid)

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    watcher.join()
    row = {"mode": mode, "input": path.name, "size": size, "peak_gib": round(peak / 2**30, 3)}
    if proc.returncode != 0:
        row.update(failed=stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {proc.returncode}")
        return row
    result = json.loads(stdout.strip().splitlines()[-1])
    row.update(
        seconds=round(result["seconds"], 1),
        objects=result["objects"],
        chunk=result["chunk"],
        mpix_per_s=round(size * size / 1e6 / result["seconds"], 2),
        **{k: result[k] for k in ("cpu_user_s", "cpu_system_s", "minor_faults")},
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384, 32768])
    parser.add_argument("--formats", nargs="+", default=["tiff", "ome-zarr"], choices=["tiff", "ome-zarr"])
    parser.add_argument(
        "--whole-max", type=int, default=8192, help="largest size run through the whole-image path"
    )
    parser.add_argument("--chunk", type=int, default=0, help="chunk core px (default 0: the engine's choice)")
    parser.add_argument("--json")
    parser.add_argument("--keep", type=Path, help="folder for the inputs/outputs (default: a temporary one)")
    parser.add_argument("--overlap", type=float, default=0.5, help="tile overlap (0: each pixel in one tile)")
    parser.add_argument(
        "--model",
        default="",
        help="a model file (.pth) instead of the tiny network: the overhead ratio as users see it",
    )
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path, out, chunk, overlap, model_path = args.child
        print(json.dumps(child(mode, Path(path), Path(out), int(chunk), float(overlap), model_path)))
        return
    from machine import machine_line

    rows = []
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        for size in args.sizes:
            inputs = write_inputs(size, Path(tmp), args.formats)
            for fmt, path in inputs.items():
                rows.append(
                    measure(
                        "chunked",
                        path,
                        Path(tmp) / f"out_{fmt}_{size}",
                        args.chunk,
                        size,
                        args.overlap,
                        args.model,
                    )
                )
                print(json.dumps(rows[-1]), flush=True)
            if size <= args.whole_max and "tiff" in inputs:
                rows.append(
                    measure(
                        "whole",
                        inputs["tiff"],
                        Path(tmp) / f"whole_{size}",
                        args.chunk,
                        size,
                        args.overlap,
                        args.model,
                    )
                )
                print(json.dumps(rows[-1]), flush=True)
                chunked = next(
                    r
                    for r in rows
                    if r["size"] == size and r["mode"] == "chunked" and r["input"].endswith(".tif")
                )
                if "mpix_per_s" in chunked and "mpix_per_s" in rows[-1]:
                    print(f"overhead ratio at {size}: {chunked['mpix_per_s'] / rows[-1]['mpix_per_s']:.2f}")
            for path in inputs.values():
                subprocess.run(["rm", "-rf", str(path)], check=False)
    payload = {
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "overlap": args.overlap,
        "machine": machine_line(),
        "load_average": list(__import__("os").getloadavg()),
        "chunk": args.chunk,
        "rows": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""A drop-folder segmentation run around `segment_file`: the device and torchrun's processes, the
model, the folder's inputs, the run record (`runs/segment_<time>.json`), outputs of killed runs,
every rank's results gathered, the object tables and the records settled. No prompts, no printing."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from .. import distributed, run_records
from ..segment_outputs import FileResult, SegmentOptions
from .model import Model

T = TypeVar("T")

__all__ = [
    "RunRecord",
    "folder_inputs",
    "gather_results",
    "is_main",
    "load_for_segmenting",
    "main_first",
    "on_main",
    "other_processes",
    "require_runs_folder",
    "settle_run",
    "start_processes",
    "unfinished_outputs",
    "write_tables",
]


def start_processes(requested: str | None) -> str:
    """The device of this process ("auto" when not given), joined to torchrun's process group when
    launched by torchrun (`paulow.distributed`)."""
    from ..device import pick_device

    device = distributed.local_device(pick_device(requested or "auto"))
    distributed.init(device)
    return device


def is_main() -> bool:
    """True in rank 0 (and without torchrun): it prompts, holds the lock, writes records and tables."""
    return distributed.is_main()


def on_main(fn: Callable[[], T]) -> T:
    """`fn()` in rank 0 alone, its answer (or its error) given to every rank."""
    return distributed.on_main(fn)


def main_first(fn: Callable[[], T]) -> T:
    """`fn()` in rank 0 first, then in the others once it succeeded there."""
    return distributed.main_first(fn)


def other_processes() -> int | None:
    """How many torchrun processes segment beside this one (None without torchrun)."""
    return distributed.world_size() - 1 if distributed.active() else None


def require_runs_folder(out_dir: Path) -> Path:
    """Refuse an output folder whose `runs` is not a folder of run records (`paulow.run_records`)."""
    return run_records.require_runs_folder(out_dir)


def load_for_segmenting(path: Path, device: str) -> Model:
    """The model file's networks on `device` (rank 0 first), its metadata as the file has it."""
    from ..checkpoint import load_checkpoint

    loaded = main_first(lambda: load_checkpoint(path, device))
    return Model(loaded.models, loaded.meta, device)


def folder_inputs(folder: Path) -> tuple[list[Path], list[FileResult]]:
    """Rank 0's images to segment (every rank gets them) and, in rank 0, its files that are no
    images as failed results (empty in the other ranks)."""
    from ..io.listing import list_unusable
    from ..pair_loading import load_images

    images = on_main(lambda: load_images(folder))
    if not is_main():
        return images, []
    return images, [FileResult(source=p, error=why) for p, why in list_unusable(folder)]


def options_record(opts: SegmentOptions) -> dict:
    """The options a run record keeps (the device aside: another device gives the same masks)."""
    return {k: v for k, v in asdict(opts).items() if k != "device"}


def unfinished_outputs(out_dir: Path, model_sha: str, opts: SegmentOptions) -> dict[str, run_records.Earlier]:
    """Rank 0 reads the outputs of runs killed before finishing, with the same model and options, by
    the SHA-256 of the input that made them (`paulow.run_records`); every rank gets its answer."""
    if opts.instances:  # their object tables died with the run: segment again
        return on_main(dict)
    return on_main(lambda: run_records.unfinished_outputs(out_dir, model_sha, options_record(opts)))


@dataclass(frozen=True)
class RunRecord:
    """`runs/segment_<time>.json`: which model (and its SHA-256), threshold and options made which
    outputs from which inputs, so a mask can be traced back long after the inputs were cleared."""

    path: Path
    model_path: Path
    model_sha: str
    model: Model
    opts: SegmentOptions
    options: dict  # every option of the command (command line, config file, defaults)
    started: str

    @classmethod
    def begin(
        cls, out_dir: Path, model_path: Path, model: Model, opts: SegmentOptions, options: dict
    ) -> RunRecord:
        """A record of a run starting now under a free name in `out_dir/runs` (hashed in rank 0)."""
        from ..checkpoint import sha256_file
        from ..io.atomic import unique_path

        started = f"{_dt.datetime.now():%Y-%m-%d %H:%M:%S}"
        sha = sha256_file(model_path) if is_main() else ""
        path = unique_path(out_dir / "runs" / f"segment_{started.replace(':', '').replace(' ', '_')}.json")
        return cls(path, model_path, sha, model, opts, options, started)

    def write(self, results: list[FileResult], finished: bool) -> Path:
        """Rewrite the record (atomically) for `results`; `finished` stays null until the run ends."""
        from .. import __version__
        from ..predict import choose_threshold
        from ..report import write_json

        meta = self.model.meta
        record = {
            "started": self.started,
            "finished": f"{_dt.datetime.now():%Y-%m-%d %H:%M:%S}" if finished else None,
            "paulow_version": __version__,
            "model": {
                "file": self.model_path.name,
                "sha256": self.model_sha,
                "name": meta.get("name"),
                "arch": meta.get("arch"),
                "saved": meta.get("date"),
                "members": len(self.model.networks),
            },
            "threshold": choose_threshold(meta, self.opts.threshold),
            "device": self.opts.device,
            "options": self.options,
            "segment_options": options_record(self.opts),
            "files": [_file_entry(r) for r in results],
        }
        return write_json(self.path, record)


def _file_entry(r: FileResult) -> dict:
    return {
        "input": r.source.name,
        "input_sha256": r.read_as.sha256 if r.read_as else None,
        "outputs": [w.name for w in r.written],
        "outputs_sha256": run_records.output_hashes(r),
        "error": r.error,
        **({"chunked": r.chunked} if r.chunked else {}),
    }


def gather_results(results: list[FileResult], images: list[Path]) -> list[FileResult]:
    """Under torchrun, every rank's results in rank 0 in the order of `images`; a result whose
    outputs are not all on disk (as rank 0 sees them) becomes an error, so its input is kept.
    Without torchrun, `results` as they are."""
    if not distributed.active():
        return results
    shares = distributed.gather(results)
    order = {path: i for i, path in enumerate(images)}  # files that are no images first, as without torchrun
    gathered = sorted((r for share in shares for r in share), key=lambda r: order.get(r.source, -1))
    for r in gathered:
        missing = [w.name for w in r.written if not w.is_file()]
        if r.error is None and missing:
            r.error = f"output(s) {', '.join(missing)} missing after segmenting: check the disk"
    return gathered


def write_tables(results: list[FileResult], out_dir: Path, opts: SegmentOptions) -> list[Path]:
    """The per-object and per-image CSVs of this run (with --instances)."""
    from ..io.atomic import unique_path
    from ..report import write_csv

    if not opts.instances:
        return []
    written = []
    for name, key in (("objects.csv", "objects"), ("summary.csv", "summary")):
        path = unique_path(out_dir / name)
        write_csv(path, [row for r in results for row in getattr(r, key)])
        written.append(path)
    return written


def settle_run(out_dir: Path, record: Path, results: list[FileResult]) -> list[Path]:
    """Mark, in older unfinished records, the entries this finished run handled (same input, or an
    output of the same name), so they are never reused (`paulow.run_records.settle`)."""
    ok = [r for r in results if r.error is None]
    return run_records.settle(
        out_dir,
        record,
        [r.read_as.sha256 for r in ok if r.read_as],
        [w.name for r in ok for w in r.written],
    )

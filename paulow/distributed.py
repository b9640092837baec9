"""torchrun / PyTorch DDP plumbing: who this process is, side effects on rank 0 only, decisions made
once and broadcast so ranks never disagree (or hang waiting for each other).

Without torchrun (no `WORLD_SIZE` in the environment) everything here is a no-op for one process,
so the same code runs on a laptop, one GPU, or `torchrun --nproc_per_node N`. On the CPU the
process group uses `gloo` (which is how the tests run it); on CUDA `nccl`.
"""
from __future__ import annotations

import os
from typing import Any, Sequence, TypeVar

T = TypeVar("T")


def world_size() -> int:
    """Processes in the run (1 without torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on the process that prompts, locks the workspace, writes reports and clears inputs."""
    return rank() == 0


def local_device(requested: str) -> str:
    """`cuda:LOCAL_RANK` for a CUDA run under torchrun, else the requested device unchanged."""
    if requested.startswith("cuda") and world_size() > 1 and ":" not in requested:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return requested


def init(device: str) -> bool:
    """Join the process group when started by torchrun; True if this run is distributed."""
    import torch.distributed as dist

    if world_size() <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def shutdown() -> None:
    """Leave the process group (idempotent)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: T, source: int = 0) -> T:
    """Rank `source`'s `value` on every rank (any picklable object); the value itself without DDP.
    Stop decisions (time limit, early stopping, the plan) go through here so all ranks agree."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box: list[Any] = [value if rank() == source else None]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def any_rank(flag: bool) -> bool:
    """True on every rank if it is True on any rank (e.g. one rank hit the time limit)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def barrier() -> None:
    """Wait for every rank (no-op without DDP)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shard(items: Sequence[T], of_rank: int | None = None, ranks: int | None = None) -> list[T]:
    """This rank's share of `items` (round robin, so file sizes spread evenly): item i goes to
    rank i % world_size. Every item goes to exactly one rank."""
    of_rank = rank() if of_rank is None else of_rank
    ranks = world_size() if ranks is None else ranks
    return [item for i, item in enumerate(items) if i % ranks == of_rank]


def gather(value: T) -> list[T]:
    """Every rank's `value`, in rank order, on every rank (`[value]` without DDP)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out

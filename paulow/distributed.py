"""torchrun / PyTorch DDP plumbing: who this process is, side effects on rank 0 only, decisions made
once and broadcast so ranks never disagree (or hang waiting for each other).

Without torchrun (no `WORLD_SIZE` in the environment) everything here is a no-op for one process,
so the same code runs on a laptop, one GPU, or `torchrun --nproc_per_node N`. On the CPU the
process group uses `gloo` (which is how the tests run it); on CUDA `nccl`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
# seconds a rank waits in a collective before giving up (a rank that died or hangs); long enough
# for rank 0's whole-image validation and prompts between collectives
TIMEOUT_ENV = "PAULOW_DDP_TIMEOUT"
DEFAULT_TIMEOUT = 1800.0


RENDEZVOUS_ENV = "PAULOW_DDP_RENDEZVOUS_TIMEOUT"
DEFAULT_RENDEZVOUS = 60.0
_UNSET = "unset WORLD_SIZE RANK LOCAL_RANK MASTER_ADDR MASTER_PORT (left over from an earlier torchrun?)"


def environment() -> tuple[int, int]:
    """(WORLD_SIZE, RANK) that torchrun set, (1, 0) without it; a `UsageError` naming the variables
    for values torchrun never sets (not whole numbers, one without the other, RANK out of range)."""
    from .errors import UsageError

    given = {k: os.environ[k] for k in ("WORLD_SIZE", "RANK") if k in os.environ}
    if not given:
        return 1, 0
    shown = " ".join(f"{k}={v!r}" for k, v in given.items())
    if len(given) == 1:
        raise UsageError(
            f"the environment sets {shown} without {'RANK' if 'WORLD_SIZE' in given else 'WORLD_SIZE'}: "
            f"{_UNSET}, or start the run with torchrun"
        )
    try:
        size, index = int(given["WORLD_SIZE"]), int(given["RANK"])
    except ValueError:
        raise UsageError(
            f"the environment sets {shown}, which are not whole numbers: {_UNSET}, or start "
            "the run with torchrun"
        ) from None
    if size < 1 or not 0 <= index < size:
        raise UsageError(
            f"the environment sets {shown} (RANK must be 0 to WORLD_SIZE - 1): {_UNSET}, or "
            "start the run with torchrun"
        )
    return size, index


def world_size() -> int:
    """Processes in the run (1 without torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return environment()[0]


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return environment()[1]


def is_main() -> bool:
    """True on the process that prompts, locks the workspace, writes reports and clears inputs."""
    return rank() == 0


def local_device(requested: str) -> str:
    """`cuda:LOCAL_RANK` for a CUDA run under torchrun, else the requested device unchanged."""
    if requested.startswith("cuda") and world_size() > 1 and ":" not in requested:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return requested


def active() -> bool:
    """True inside a process group (a torchrun run after `init`)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def init(device: str, timeout: float | None = None) -> bool:
    """Join the process group when started by torchrun; True if this run is distributed.

    `timeout` (default: `$PAULOW_DDP_TIMEOUT` or 1800 s): how long a collective waits for a rank
    before failing, so the others exit instead of hanging when one rank is stuck."""
    import datetime

    import torch.distributed as dist

    if world_size() <= 1 or dist.is_initialized():
        return dist.is_initialized()
    if timeout is None:
        timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    store = _rendezvous()
    dist.init_process_group(
        backend=backend,
        store=store,
        rank=rank(),
        world_size=world_size(),
        timeout=datetime.timedelta(seconds=timeout),
    )
    store.set_timeout(datetime.timedelta(seconds=timeout))
    return True


def _rendezvous():
    """torchrun's store (env://), waiting at most `$PAULOW_DDP_RENDEZVOUS_TIMEOUT` seconds (60) for the
    other processes, so leftover variables without peers give one line instead of a 30-minute wait."""
    import datetime

    import torch.distributed as dist

    from .errors import UsageError

    try:
        wait = float(os.environ.get(RENDEZVOUS_ENV, DEFAULT_RENDEZVOUS))
    except ValueError:
        wait = float("nan")
    if not 0 < wait < float("inf"):
        raise UsageError(
            f"{RENDEZVOUS_ENV}={os.environ.get(RENDEZVOUS_ENV)!r} is not a number of seconds > 0: "
            "fix or unset it"
        )
    size, index = environment()
    try:
        store, _, _ = next(dist.rendezvous("env://", index, size, timeout=datetime.timedelta(seconds=wait)))
    except (RuntimeError, ValueError, OSError) as exc:  # DistNetworkError/DistStoreError are RuntimeErrors
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise UsageError(
            f"the other torchrun process(es) did not join at {where} within {wait:g} s "
            f"({RENDEZVOUS_ENV}; WORLD_SIZE={size}, RANK={index}; {type(exc).__name__}): start all "
            f"of them with torchrun, or {_UNSET}"
        ) from None
    return store


def shutdown() -> None:
    """Leave the process group (idempotent)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_process(code: int) -> None:
    """End a torchrun rank now, with `code`, once its work is written and it has left the group.

    After `destroy_process_group`, a gloo rank's interpreter shutdown aborted in C++ ("terminate
    called without an active exception", no Python frame) in 6 of 37 CPU runs of
    `tests/test_ddp_e2e.py`, turning a finished run into a torchrun failure. Output streams and
    logs are flushed here, then the process exits without running C++ static destructors."""
    import logging

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)


def broadcast(value: T, source: int = 0) -> T:
    """Rank `source`'s `value` on every rank (any picklable object); the value itself without DDP.
    Stop decisions (time limit, early stopping, the plan) go through here so all ranks agree."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box: list[Any] = [value if rank() == source else None]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def _flag(flag: bool):
    """A one-element tensor where the backend can reduce it (nccl: the current GPU)."""
    import torch
    import torch.distributed as dist

    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    return torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)


def any_rank(flag: bool) -> bool:
    """True on every rank if it is True on any rank (e.g. one rank hit the time limit)."""
    import torch.distributed as dist

    if not active():
        return flag
    tensor = _flag(flag)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def decide(flag: bool) -> bool:
    """Rank 0's `flag` on every rank (a cheap tensor broadcast, fit for every training step):
    a stop decision is made once, so no rank runs a step the others skip."""
    import torch.distributed as dist

    if not active():
        return flag
    tensor = _flag(flag)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def _from_main(fn: Callable[[], T]) -> tuple[bool, Any]:
    """Rank 0 runs `fn`; every rank gets (True, its value) or (False, the error it raised)."""
    from .errors import PaulowError

    outcome: tuple[bool, Any] = (True, None)
    if is_main():
        try:
            outcome = (True, fn())
        except PaulowError as exc:
            if not active():
                raise
            outcome = (False, exc)
    ok, value = broadcast(outcome)
    if not ok:
        if not is_main():
            value.reported_by_main = True  # rank 0 prints it; the others only exit with its code
        raise value
    return ok, value


def on_main(fn: Callable[[], T]) -> T:
    """`fn()` run by rank 0 alone (a prompt, the workspace lock), its result broadcast to every
    rank; a user error it raises is raised on every rank, so all exit alike instead of waiting."""
    return _from_main(fn)[1]


def main_first(fn: Callable[[], T]) -> T:
    """`fn()` on rank 0 first, then on the other ranks (each keeps its own result): a bad input
    is reported once, by rank 0, and every rank exits with its error."""
    _, value = _from_main(fn)
    return value if is_main() else fn()


def barrier() -> None:
    """Wait for every rank (no-op without DDP)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shard(
    items: Sequence[T],
    of_rank: int | None = None,
    ranks: int | None = None,
    key: Callable[[T], Hashable] | None = None,
) -> list[T]:
    """This rank's share of `items` (round robin, so file sizes spread evenly): item i goes to
    rank i % world_size. Every item goes to exactly one rank. With `key`, items sharing a key
    (files whose outputs would share a name) go to the same rank, round robin over the keys."""
    of_rank = rank() if of_rank is None else of_rank
    ranks = world_size() if ranks is None else ranks
    if key is None:
        return [item for i, item in enumerate(items) if i % ranks == of_rank]
    order = {k: i for i, k in enumerate(dict.fromkeys(key(item) for item in items))}
    return [item for item in items if order[key(item)] % ranks == of_rank]


def gather(value: T) -> list[T]:
    """Every rank's `value`, in rank order, on every rank (`[value]` without DDP)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def wrap(model, device: str):
    """`model` in DistributedDataParallel inside a process group (the module trains, its
    parameters stay `model`'s); `model` itself otherwise."""
    if not active():
        return model
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # the channels_last 1x1 convolution weights get default-layout gradients: the same bytes for a
    # 1x1 kernel, but DDP warns at every run about the strides
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    ids = [int(device.split(":")[1])] if device.startswith("cuda:") else None
    return DistributedDataParallel(model, device_ids=ids)


def sampler(dataset, seed: int):
    """A DistributedSampler giving this rank its share of `dataset` (shuffled with `seed`; every
    rank the same number of batches), or None outside a process group."""
    if not active():
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)


def set_epoch(loader, epoch: int) -> None:
    """Reshuffle a DistributedSampler's shares for `epoch` (no-op for an ordinary loader)."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)

"""Data-parallel training under ``torchrun``: process group, device, and a curriculum-aware sampler.

``torchrun --nproc_per_node=N`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR in each
process's environment; :func:`setup` sees them and joins the process group (gloo on CPU, nccl on
CUDA). Without them it returns a one-process context, so the same command works either way.

The sampler keeps single-process semantics: every epoch's order is the curriculum pool permuted
by (seed, epoch), cut into *global* batches of ``batch_size``; rank r trains on its disjoint
slice of each global batch, and gradients are summed so that one step equals the full-batch mean.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .errors import ConfigError

_ENV = ("RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment says this process is one rank of a ``torchrun`` job."""
    return all(k in os.environ for k in _ENV)


def resolve_device(device="cpu", local_rank: int = 0) -> torch.device:
    """``'cpu'``, ``'cuda'`` (-> this rank's GPU) or ``'cuda:i'``; clear error when there is no GPU."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device is available on this machine (use --device cpu)")
        if dev.index is None and local_rank >= torch.cuda.device_count():  # nccl needs one GPU per rank
            raise ConfigError(f"--device {device}: local rank {local_rank} has no GPU of its own (only "
                              f"{torch.cuda.device_count()} here); use --nproc_per_node <= the GPU count")
        index = dev.index if dev.index is not None else local_rank
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    if dev.type != "cpu":
        raise ConfigError(f"--device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return dev


def setup(device="cpu") -> DistContext:
    """Join the ``torchrun`` process group if there is one (gloo on CPU, nccl on CUDA)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank,
                           resolve_device(device, local_rank))
    if not launched_by_torchrun():
        return DistContext(device=resolve_device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device, local_rank)
    if world > 1:
        if not dist.is_available():
            raise ConfigError("torch.distributed is not available in this torch build; run one process")
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo",
                                **({"device_id": dev} if dev.type == "cuda" else {}))
    return DistContext(rank, world, local_rank, dev)


def teardown() -> None:
    """Leave the process group (the CLI calls this once the command is done)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that writes checkpoints, reports and prints."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", 0)) == 0


def all_reduce_sum(value: float, ctx: DistContext) -> float:
    """Sum a Python number over all ranks (identity with one process)."""
    if not ctx.distributed:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s contiguous, disjoint part of one global batch (sizes differ by at most 1)."""
    return torch.tensor_split(batch, world_size)[rank]


def epoch_permutation(pool: torch.Tensor, seed: int) -> torch.Tensor:
    """The epoch's pool (curriculum order, easiest first) in the random order that seed gives."""
    gen = torch.Generator().manual_seed(seed)
    return pool[torch.randperm(len(pool), generator=gen)]


class CurriculumSampler(torch.utils.data.Sampler):
    """Batch sampler for one rank: its shard of each global batch of the epoch's permuted pool.

    ``pools[e]`` holds the sample indices allowed at epoch ``e`` (the curriculum's easiest
    ``pool_size`` samples, or all of them); ``seeds[e]`` permutes them. Every rank sees the same
    permutation and the same number of steps, so the ranks stay in lockstep even when the last
    global batch is too small to give every rank a sample (that rank then gets an empty batch).
    Usable as ``DataLoader(dataset, batch_sampler=...)``; ``start`` skips batches on resume.
    """

    def __init__(self, pools, seeds, batch_size: int, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in [0, {world_size})")
        self.pools, self.seeds = list(pools), list(seeds)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def permutation(self) -> torch.Tensor:
        return epoch_permutation(torch.as_tensor(self.pools[self.epoch]), self.seeds[self.epoch])

    def global_batches(self):
        """(global batch, this rank's part) for each step of the epoch from ``start`` on."""
        perm = self.permutation()
        for i in range(self.start * self.batch_size, len(perm), self.batch_size):
            glob = perm[i : i + self.batch_size]
            yield glob, shard(glob, self.rank, self.world_size)

    def __iter__(self):
        for _glob, local in self.global_batches():
            yield local.tolist()

    def __len__(self):
        n = len(self.pools[self.epoch])
        return max(0, -(-n // self.batch_size) - self.start)

"""Data-parallel training with torch's own engine: launched by ``torchrun``, each process joins
the group torchrun describes in its environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``/``PORT``), wraps the model in ``DistributedDataParallel`` (gradients averaged
across ranks in the backward pass) and reads its own part of every phase from the mixer
(``PhaseDataset(rank=..., world_size=...)``). Without ``torchrun`` it is a world of one and
nothing here does anything.

    torchrun --nproc_per_node 2 -m api.cli train SPEC    # gloo on CPU, nccl on GPUs
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The rank that writes metrics, evaluations, checkpoints and the summary."""
        return self.rank == 0


def join_world(device: torch.device) -> tuple[World, torch.device]:
    """The world torchrun started this process in (a world of one without it), and the device
    this rank trains on: ``cuda:LOCAL_RANK`` on GPUs, else ``device``."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The module the training step calls: the model itself, or its DDP wrapper."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_ranks(value: float, world: World, device: torch.device) -> float:
    """``value`` averaged over the ranks (every rank must call it)."""
    if world.size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / world.size


def leave_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

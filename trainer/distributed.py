"""Data-parallel training with torch's own engine: launched by ``torchrun``, each process joins
the group torchrun describes in its environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``/``PORT``) and reads its own part of every phase from the mixer
(``PhaseDataset(rank=..., world_size=...)``). The model is either replicated
(``DistributedDataParallel``: gradients averaged across ranks in the backward pass) or sharded
(FSDP2, ``fully_shard`` per block and at the root: parameters, gradients and optimizer state
split across ranks, gathered per block when used). Checkpoints of a sharded model hold full,
unsharded state dicts keyed by parameter name (``torch.distributed.checkpoint.state_dict``), so
any world size can resume them. Without ``torchrun`` it is a world of one and nothing here
does anything.

    torchrun --nproc_per_node 2 -m api.cli train SPEC --no-ray   # gloo on CPU, nccl on GPUs
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


def wrap(model: torch.nn.Module, world: World, device: torch.device, sharded: bool) -> torch.nn.Module:
    """The module the training step calls: the model itself, its DDP wrapper, or (``sharded``)
    the model itself with its blocks and root sharded in place, which must happen before the
    optimizer sees the parameters."""
    if world.size == 1:
        return model
    if sharded:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def is_sharded(world: World, sharded: bool) -> bool:
    return sharded and world.size > 1


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               sharded: bool) -> tuple[dict, dict]:
    """Model and optimizer state dicts to save. Sharded, every rank must call it (it gathers);
    the optimizer's state is then keyed by parameter name, not position."""
    if not sharded:
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def restore_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, model_state: dict,
                  optimizer_state: dict | None, by_name: bool, sharded: bool) -> None:
    """Load full state dicts (``by_name``: the optimizer's keyed by parameter name, as
    ``full_state`` writes for a sharded model) into a plain or sharded model."""
    if not (sharded or by_name):
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(optimizer_state)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    if optimizer is None:
        set_model_state_dict(model, model_state, options=options)
    elif not by_name:
        raise ValueError("the checkpoint's optimizer state is not keyed by parameter name (written "
                         "without data_parallel: fsdp); resume it with data_parallel: ddp")
    else:
        set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                       options=options)


def norm_value(norm: torch.Tensor) -> float:
    """A gradient norm as a float; a sharded model's is a DTensor to gather first."""
    return (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item()


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

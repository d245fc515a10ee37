"""Process-group setup for ``torchrun`` (nccl on GPU, gloo on CPU) and small collective helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup(device: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def any_true(flag: bool, ctx: DistContext) -> bool:
    """True if ``flag`` is True on any rank (every rank gets the same answer)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def max_param_difference(model: torch.nn.Module, ctx: DistContext) -> float:
    """Largest absolute difference of any parameter between this rank and rank 0 (0.0 when not distributed).

    DDP keeps replicas identical by construction; this check proves it at the end of every distributed run.
    """
    if not ctx.enabled:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).float().cpu() for p in model.parameters()])
    ref = flat.clone()
    if ctx.device.type == "cuda":
        ref = ref.to(ctx.device)
    dist.broadcast(ref, src=0)
    diff = torch.tensor([(flat - ref.cpu()).abs().max().item()], device=ref.device)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())

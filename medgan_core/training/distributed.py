"""Process groups for multi-GPU (or multi-process CPU) training: torchrun environment, spawn, rank-0 helpers.

Two ways to get N ranks, both ending in `init_distributed`:
- `torchrun --nproc_per_node N -m medgan_core.train ...` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
  MASTER_PORT (multi-node through torchrun's --nnodes/--node_rank/--rdzv_* arguments);
- `medgan train --gpus N` spawns N processes with torch.multiprocessing on one machine (a free local port).
NCCL is used on CUDA, gloo on CPU. The process group has a timeout, so a rank that dies or stalls ends the job
with an error instead of a hang (torchrun / spawn then stop the others with a non-zero exit).
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 1800  # long enough for a metric evaluation on rank 0 while others wait at a barrier


@dataclass
class DistInfo:
    """Where this process stands: rank, world size, local rank (GPU index on its node) and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")


def env_world() -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) from torchrun's environment variables, or None when not set."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return rank, world, int(os.environ.get("LOCAL_RANK", rank))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pick_device(device: str, local_rank: int) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is usable, else cpu; 'cuda' -> cuda:<local_rank>; 'cpu' -> cpu."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but CUDA is not available; use --device cpu")
        index = local_rank if device == "cuda" else torch.device(device).index
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device(device)


def init_distributed(
    rank: int, world_size: int, local_rank: int, device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S
) -> DistInfo:
    """Start the process group (when world_size > 1) and return this rank's DistInfo."""
    dev = pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        if "MASTER_PORT" not in os.environ:
            raise RuntimeError("MASTER_PORT is not set: launch with torchrun or `medgan train --gpus N`")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = dict(device_id=dev) if dev.type == "cuda" else {}
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=timeout_s), **kwargs
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_module(module: torch.nn.Module | None, src: int = 0) -> None:
    """Copy every parameter and buffer of rank `src` to all ranks (identical initial weights)."""
    if module is None or not is_distributed():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=src)


def all_reduce_gradients(params: list[torch.Tensor], world_size: int) -> None:
    """Average the gradients of `params` over ranks in one flat all-reduce; NaN -> 0 and +-inf -> +-1e5.

    The non-finite clean-up runs on a single rank too, as NVIDIA's loop does: one bad batch must not poison the
    optimiser's moments.
    """
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    if world_size > 1:
        dist.all_reduce(flat)
        flat /= world_size
    torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
    for param, grad in zip(params, flat.split([p.numel() for p in params])):
        param.grad = grad.reshape(param.shape)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on at least one (a stop request from a signal; once per tick)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value)
    return bool(value.item() > 0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()

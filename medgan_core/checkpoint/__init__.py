"""Checkpoints: NVIDIA network pickles read without executing them, our safetensors format, weight transfer.

- `load_network(path)`: NVIDIA `network-snapshot-*.pkl` (stylegan2-ada-pytorch or stylegan3 code base, numpy 1 or
  2 era) or a medgan `.safetensors` checkpoint -> dict of ready-to-use networks.
- `save_checkpoint` / `load_checkpoint`: our format (see `native`).
- `transfer_weights`: FFHQ RGB weights into a grayscale target of another resolution (see `transfer`).
- `resolve_network(path_or_url)`: a local path, or NVIDIA's published URL downloaded and cached (see `fetch`).
- `export.export_nvidia_pickle`: a snapshot -> a pickle of NVIDIA's own classes (needs their checkout).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from medgan_core.checkpoint.fetch import NetworkFetchError, resolve_network
from medgan_core.checkpoint.native import (
    flatten_optimizer_state,
    is_medgan_checkpoint,
    load_checkpoint,
    restore_optimizer_state,
    save_checkpoint,
)
from medgan_core.checkpoint.nvidia_pickle import CheckpointError, UnsafePickleError, load_nvidia_pickle
from medgan_core.checkpoint.transfer import TransferReport, adapt_rgb_tensor, plan_transfer, transfer_weights

__all__ = [
    "CheckpointError",
    "TransferReport",
    "UnsafePickleError",
    "adapt_rgb_tensor",
    "flatten_optimizer_state",
    "load_checkpoint",
    "load_network",
    "NetworkFetchError",
    "plan_transfer",
    "resolve_network",
    "restore_optimizer_state",
    "save_checkpoint",
    "training_set_kwargs_of",
    "transfer_weights",
]

NETWORK_KEYS = ("G", "D", "G_ema")


def _frozen(module: torch.nn.Module | None, device: str | torch.device) -> torch.nn.Module | None:
    if module is None:
        return None
    return module.to(device).eval().requires_grad_(False)


def _augment_p(pipe: torch.nn.Module | None) -> float | None:
    p = getattr(pipe, "p", None) if pipe is not None else None
    return float(p.item()) if isinstance(p, torch.Tensor) and p.numel() == 1 else None


def training_set_kwargs_of(record: dict | None) -> dict | None:
    """The dataset options of a medgan snapshot record: top level, or in its training options (NVIDIA's layout,
    or nested one level down as older snapshots have them); None when absent."""
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("training_set_kwargs"), dict):
        return record["training_set_kwargs"]
    options = record.get("training_options")
    if not isinstance(options, dict):
        return None
    if isinstance(options.get("training_set_kwargs"), dict):
        return options["training_set_kwargs"]
    for value in options.values():
        if isinstance(value, dict) and isinstance(value.get("training_set_kwargs"), dict):
            return value["training_set_kwargs"]
    return None


def load_network(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load the networks of an NVIDIA pickle or a medgan checkpoint for inference.

    Returns dict with keys G, D, G_ema (our modules in eval mode with requires_grad False, or None when absent),
    augment_pipe (AugmentPipe or None), augment_p (float or None), training_set_kwargs (dict or None),
    record (the training record of a medgan checkpoint, else None) and source ('nvidia-pickle' or 'medgan').
    Raises CheckpointError naming the file on bad input (UnsafePickleError, a subclass, for a refused pickle).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (expected a network .pkl or a medgan .safetensors checkpoint)")
    with open(path, "rb") as f:
        head = f.read(4)
    if is_medgan_checkpoint(path):
        loaded = load_checkpoint(path)
        networks, record = loaded["networks"], loaded["record"]
        pipe = networks.get("augment_pipe")
        result = {key: networks.get(key) for key in NETWORK_KEYS}
        result.update(
            augment_pipe=pipe,
            augment_p=_augment_p(pipe) if pipe is not None else record.get("augment_p"),
            training_set_kwargs=training_set_kwargs_of(record),
            record=record,
            source="medgan",
        )
    elif head[:1] == b"\x80":
        result = load_nvidia_pickle(path)
        result.update(record=None, source="nvidia-pickle")
    elif head[:2] == b"PK":
        raise CheckpointError(f"{path}: a zip file (torch.save checkpoint?), not a network pickle or checkpoint")
    else:
        raise CheckpointError(f"{path}: neither a network pickle nor a medgan .safetensors checkpoint")
    for key in NETWORK_KEYS:
        result[key] = _frozen(result[key], device)
    if result["augment_pipe"] is not None:
        result["augment_pipe"] = result["augment_pipe"].to(device).eval()
    return result

"""Training snapshots in our checkpoint format, and resuming from them or from an NVIDIA pickle.

A snapshot is one safetensors file written atomically by `medgan_core.checkpoint.save_checkpoint`:
networks G, D, G_ema (and the augment pipe when there is one) plus extra tensors for the optimiser moments
and RNG states, and a JSON record under "training_state": kimg, tick, batch index, augment p, the ADA
controller's counters, the path-length target, the optimisers' scalar state and the options.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

OPT_PREFIX = "optimizer"
RNG_PREFIX = "rng"


# ---- RNG state -----------------------------------------------------------------------------------------------
def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {f"{RNG_PREFIX}.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors[f"{RNG_PREFIX}.cuda"] = torch.cuda.get_rng_state()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors[f"{RNG_PREFIX}.numpy_keys"] = torch.from_numpy(keys.astype(np.int64))
    return tensors, dict(numpy=[kind, int(pos), int(has_gauss), float(cached)])


def restore_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors[f"{RNG_PREFIX}.torch"].to(torch.uint8).cpu())
    if f"{RNG_PREFIX}.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors[f"{RNG_PREFIX}.cuda"].to(torch.uint8).cpu())
    kind, pos, has_gauss, cached = meta["numpy"]
    keys = tensors[f"{RNG_PREFIX}.numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))


# ---- snapshot files ------------------------------------------------------------------------------------------
def snapshot_name(cur_nimg: int, fractional: bool = False) -> str:
    """network-snapshot-<kimg:06d>.safetensors with NVIDIA's integer kimg (cur_nimg // 1000); `fractional` (runs
    with ticks under 1 kimg) adds the images past a whole kimg, '.<rest:03d>', so no two snapshots share a name."""
    kimg, rest = divmod(int(cur_nimg), 1000)
    return f"network-snapshot-{kimg:06d}" + (f".{rest:03d}" if fractional and rest else "") + ".safetensors"


def save_snapshot(
    path: str | Path, *, G, D, G_ema, augment_pipe, optimizers: dict, state: dict, options: dict
) -> Path:
    """Write everything needed to continue the run to `path` (atomic). `state` holds kimg, tick, ... (JSON)."""
    from medgan_core.checkpoint import flatten_optimizer_state, save_checkpoint

    networks = dict(G=G, D=D, G_ema=G_ema)
    if augment_pipe is not None:
        networks["augment_pipe"] = augment_pipe
    extra: dict[str, torch.Tensor] = {}
    opt_meta = {}
    for name, opt in optimizers.items():
        tensors, meta = flatten_optimizer_state(opt, prefix=f"{OPT_PREFIX}.{name}.")
        extra.update(tensors)
        opt_meta[name] = meta
    rng_tensors, rng_meta = rng_state()
    extra.update(rng_tensors)
    record = dict(training_state=dict(state, optimizers=opt_meta, rng=rng_meta), training_options=options)
    save_checkpoint(path, networks, record, extra_tensors=extra)
    return Path(path)


def load_snapshot(path: str | Path, device: torch.device) -> dict:
    """Read a snapshot written by `save_snapshot`: {networks, record, extra_tensors} (see checkpoint)."""
    from medgan_core.checkpoint import load_checkpoint

    return load_checkpoint(path, device=device)


def restore_optimizers(optimizers: dict, snapshot: dict) -> None:
    """Load each optimiser's state saved by `save_snapshot` from a loaded snapshot."""
    from medgan_core.checkpoint import restore_optimizer_state

    state = snapshot["record"]["training_state"]
    for name, opt in optimizers.items():
        restore_optimizer_state(opt, snapshot["extra_tensors"], state["optimizers"][name])


def is_training_snapshot(path: str | Path) -> bool:
    """True for our safetensors snapshots that carry a training state (resume), False otherwise (transfer)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return False
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    return any("training_state" in value for value in metadata.values())


def weights_digest(*modules: torch.nn.Module, skip_suffixes: tuple[str, ...] = ("_avg",)) -> str:
    """SHA-256 over the names and bytes of every parameter and buffer (buffers ending in `skip_suffixes`,
    the per-rank running averages NVIDIA also leaves unsynchronised, are left out)."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            if name.endswith(skip_suffixes):
                continue
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()

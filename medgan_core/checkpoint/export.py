"""Export: a medgan snapshot (or any network `load_network` reads) -> a network pickle of NVIDIA's own classes.

The pickle holds what NVIDIA's training loop writes: `training_set_kwargs` (a dict with NVIDIA's dataset
`class_name`, or None), then `G`, `D`, `G_ema` and `augment_pipe`, each an instance of NVIDIA's class from the
user's checkout (`nvidia_code.import_nvidia`), built from our recorded constructor arguments (the same names as
NVIDIA's) and loaded with our tensors through `load_state_dict(strict=True)`. NVIDIA's `torch_utils.persistence`
embeds each class's source, exactly as in a snapshot of their training, so `legacy.load_network_pkl` reads it
and computes what our networks compute (tested to 1e-5). Our own loader reads it back as well (the embedded
source is ignored there, as for every NVIDIA pickle). The file appears whole or not at all (temporary name, then
rename).
"""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from medgan_core.checkpoint.nvidia_code import NvidiaCode, import_nvidia
from medgan_core.checkpoint.nvidia_pickle import CheckpointError
from medgan_core.utils.io import atomic_write

NVIDIA_DATASET_CLASS = "training.dataset.ImageFolderDataset"
# Arguments NVIDIA's ImageFolderDataset takes; other keys of a training_set_kwargs are dropped on export.
_DATASET_KEYS = ("class_name", "path", "resolution", "use_labels", "max_size", "xflip", "random_seed")


def _easy(value: Any, easy_dict: type) -> Any:
    """Nested dicts as NVIDIA's EasyDict (its code reads kwargs as attributes, e.g. legacy's force_fp16)."""
    if isinstance(value, dict):
        return easy_dict({key: _easy(item, easy_dict) for key, item in value.items()})
    if isinstance(value, list):
        return [_easy(item, easy_dict) for item in value]
    return value


def nvidia_constructor_kwargs(module: torch.nn.Module, code_base: str) -> dict:
    """Our `init_kwargs` in the spelling of NVIDIA's class (stylegan2-ada-pytorch nests synthesis_kwargs)."""
    kwargs = copy.deepcopy(dict(module.init_kwargs))
    if type(module).__name__ == "Generator" and code_base == "stylegan2-ada-pytorch":
        fixed = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
        synthesis = {key: kwargs.pop(key) for key in list(kwargs) if key not in fixed}
        kwargs["synthesis_kwargs"] = synthesis
    return kwargs


def to_nvidia_module(module: torch.nn.Module, nvidia: NvidiaCode, role: str) -> torch.nn.Module:
    """NVIDIA's Generator / Discriminator / AugmentPipe holding `module`'s tensors (eval mode, no gradients)."""
    class_name = type(module).__name__
    owner = nvidia.augment if class_name == "AugmentPipe" else nvidia.networks
    cls = getattr(owner, class_name, None)
    if cls is None or class_name not in ("Generator", "Discriminator", "AugmentPipe"):
        raise CheckpointError(f"{role}: no NVIDIA class for a {class_name} in {nvidia.root}")
    kwargs = _easy(nvidia_constructor_kwargs(module, nvidia.code_base), nvidia.dnnlib.EasyDict)
    try:
        exported = cls(**kwargs)
    except TypeError as exc:
        raise CheckpointError(
            f"{role}: NVIDIA's {class_name} ({nvidia.code_base} at {nvidia.root}) does not take these arguments: "
            f"{exc}; this network cannot be expressed in NVIDIA's code"
        ) from exc
    state = {key: value.detach().to("cpu") for key, value in module.state_dict().items()}
    if class_name == "AugmentPipe":  # p is the learned state; the rest are constants both classes compute
        exported.p.copy_(state["p"])
    else:
        try:
            exported.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{role}: tensors do not fit NVIDIA's {class_name}: {exc}") from exc
    return exported.eval().requires_grad_(False)


def nvidia_training_set_kwargs(kwargs: dict | None) -> dict | None:
    """training_set_kwargs as NVIDIA's tools expect them (class_name added, unknown keys dropped), or None."""
    if not kwargs:
        return None
    result = {key: copy.deepcopy(kwargs[key]) for key in _DATASET_KEYS if key in kwargs}
    result.setdefault("class_name", NVIDIA_DATASET_CLASS)
    if "path" in result:
        result["path"] = str(result["path"])
    return result


def export_nvidia_pickle(
    network: str | os.PathLike,
    out: str | os.PathLike,
    nvidia_src: str | os.PathLike | None = None,
    training_set_kwargs: dict | None = None,
) -> Path:
    """Write `network` (a medgan .safetensors snapshot or a network pickle) to `out` as NVIDIA's pickle.

    nvidia_src: checkout of NVIDIA's code (default $MEDGAN_NVIDIA_SRC). training_set_kwargs: override the
    dataset options recorded in the snapshot. Raises CheckpointError (NvidiaSourceError without a checkout).
    """
    from medgan_core.checkpoint import load_network

    nvidia = import_nvidia(nvidia_src)  # first: without a checkout, fail before reading anything large
    loaded = load_network(network)
    missing = [key for key in ("G", "D", "G_ema") if loaded.get(key) is None]
    if missing:
        raise CheckpointError(f"{network}: has no {', '.join(missing)}; NVIDIA's pickles need G, D and G_ema")
    dataset = nvidia_training_set_kwargs(training_set_kwargs or loaded.get("training_set_kwargs"))
    data: dict[str, Any] = {"training_set_kwargs": dict(dataset) if dataset is not None else None}
    for key in ("G", "D", "G_ema"):
        data[key] = to_nvidia_module(loaded[key], nvidia, key)
    pipe = loaded.get("augment_pipe")
    data["augment_pipe"] = to_nvidia_module(pipe, nvidia, "augment_pipe") if pipe is not None else None
    out = Path(out)
    with atomic_write(out) as f:
        pickle.dump(data, f)
    return out

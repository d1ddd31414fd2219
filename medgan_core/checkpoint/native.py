"""medgan's own checkpoint format: one safetensors file, weights plus a JSON record, nothing executable.

Layout of `<name>.safetensors`:
- tensors `'<net>.<state-dict name>'` for each network (e.g. `'G_ema.synthesis.b4.const'`) and `'<extra name>'`
  for caller-supplied extra tensors (e.g. optimiser moments);
- metadata key `'medgan'`: JSON `{"format": "medgan-checkpoint", "version": 1, "networks": {net: {"class": ...,
  "init_kwargs": {...}}}, "extra_tensors": [...], "record": {...}}`, where `record` is the caller's training state
  (kimg, augment p, options, ...).

Loading rebuilds each network from the registry of classes below (never from a module path in the file) with its
recorded `init_kwargs`, then loads its tensors with `strict=True`. Saving goes through `atomic_write`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from medgan_core.checkpoint.nvidia_pickle import CheckpointError
from medgan_core.utils.io import atomic_write

FORMAT_NAME = "medgan-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "medgan"


def _class_registry() -> dict[str, type[torch.nn.Module]]:
    """Classes a checkpoint may name: the package's networks and augmentation pipeline."""
    from medgan_core import networks

    registry: dict[str, type[torch.nn.Module]] = {
        "Generator": networks.Generator,
        "Discriminator": networks.Discriminator,
    }
    try:
        from medgan_core.augment import AugmentPipe

        registry["AugmentPipe"] = AugmentPipe
    except ImportError:
        pass
    return registry


def _json_exact(value: Any, what: str) -> Any:
    """`value` as JSON data, refusing anything that would not come back equal (tuples are the one allowed change)."""
    try:
        text = json.dumps(value, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"{what} must be JSON data (dicts, lists, str, numbers, bool, None): {exc}") from exc
    return json.loads(text)


def _network_entry(name: str, module: torch.nn.Module) -> dict:
    init_kwargs = getattr(module, "init_kwargs", None)
    if init_kwargs is None:
        raise TypeError(f"network {name!r} ({type(module).__name__}) has no init_kwargs to rebuild it from")
    return {"class": type(module).__name__, "init_kwargs": _json_exact(dict(init_kwargs), f"{name}.init_kwargs")}


def save_checkpoint(
    path: str | os.PathLike,
    networks: dict[str, torch.nn.Module],
    record: dict,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write networks (state dicts + constructor arguments), a JSON `record` and extra tensors to one file.

    networks: e.g. {'G': G, 'D': D, 'G_ema': G_ema, 'augment_pipe': pipe}; names must not contain '.'.
    record: JSON-serialisable training state. extra_tensors: names must not start with '<net>.'.
    The file appears under `path` only once completely written.
    """
    extra_tensors = dict(extra_tensors or {})
    tensors: dict[str, torch.Tensor] = {}
    entries: dict[str, dict] = {}
    for name, module in networks.items():
        if not name or "." in name:
            raise ValueError(f"network name {name!r} must be non-empty and contain no '.'")
        entries[name] = _network_entry(name, module)
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu").contiguous().clone()
    for key, value in extra_tensors.items():
        if key.split(".", 1)[0] in networks:
            raise ValueError(f"extra tensor {key!r} would collide with network {key.split('.', 1)[0]!r}")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"extra tensor {key!r} is a {type(value).__name__}, not a tensor")
        tensors[key] = value.detach().to("cpu").contiguous().clone()
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "networks": entries,
        "extra_tensors": sorted(extra_tensors),
        "record": _json_exact(record, "record"),
    }
    data = safetensors_bytes(tensors, metadata={METADATA_KEY: json.dumps(header, allow_nan=True)})
    path = Path(path)
    with atomic_write(path, size=len(data)) as f:
        f.write(data)
    return path


def is_medgan_checkpoint(path: str | os.PathLike) -> bool:
    """True when `path` looks like a safetensors file (8-byte header length, then a JSON header)."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_header(path: str | os.PathLike) -> dict:
    """The JSON record of a medgan checkpoint, without loading tensors."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{path}: a safetensors file without a medgan record (a bare state dict?)")
    header = json.loads(metadata[METADATA_KEY])
    if header.get("format") != FORMAT_NAME or int(header.get("version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint format {header.get('format')} v{header.get('version')}")
    return header


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`.

    Returns dict(networks={name: module}, record=dict, extra_tensors={name: tensor}); networks are rebuilt
    from their recorded constructor arguments, loaded strictly, moved to `device`, and left in training mode.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    header = read_header(path)
    registry = _class_registry()
    with safe_open(str(path), framework="pt", device="cpu") as f:
        names = list(f.keys())
        tensors = {key: f.get_tensor(key) for key in names}
    networks: dict[str, torch.nn.Module] = {}
    for name, entry in header["networks"].items():
        cls = registry.get(entry["class"])
        if cls is None:
            raise CheckpointError(f"{path}: network {name!r} has unknown class {entry['class']!r}")
        try:
            module = cls(**entry["init_kwargs"])
        except TypeError as exc:
            raise CheckpointError(f"{path}: cannot rebuild {name} from {entry['init_kwargs']}: {exc}") from exc
        prefix = name + "."
        state = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: tensors of {name} do not fit {entry['class']}: {exc}") from exc
        networks[name] = module.to(device)
    extra = {key: tensors[key].to(device) for key in header.get("extra_tensors", [])}
    return {"networks": networks, "record": header.get("record", {}), "extra_tensors": extra}


# ---------------------------------------------------------------------------------------------------------------
# Optimiser state as tensors + JSON, so it can ride along in `extra_tensors` and `record`.


def flatten_optimizer_state(optimizer: torch.optim.Optimizer, prefix: str = "") -> tuple[dict, dict]:
    """Split `optimizer.state_dict()` into tensors `'<prefix><param index>.<key>'` and a JSON-ready rest.

    Returns (tensors, json_state); pass both to `restore_optimizer_state` to get the same state back.
    """
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensor_keys: dict[str, list[str]] = {}
    for name in tensors:
        index, key = name[len(prefix) :].split(".", 1)
        tensor_keys.setdefault(index, []).append(key)
    groups = _json_exact(state_dict["param_groups"], "optimizer param_groups")
    json_state = {"param_groups": groups, "scalars": scalars, "tensor_keys": tensor_keys, "prefix": prefix}
    return tensors, json_state


def restore_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict, json_state: dict) -> None:
    """Load into `optimizer` the state split by `flatten_optimizer_state` (tensors may come from a checkpoint)."""
    prefix = json_state.get("prefix", "")
    state: dict[int, dict] = {}
    for index, keys in json_state["tensor_keys"].items():
        for key in keys:
            state.setdefault(int(index), {})[key] = tensors[f"{prefix}{index}.{key}"]
    for index, values in json_state["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = []
    for saved, current in zip(json_state["param_groups"], optimizer.param_groups):
        group = dict(saved)
        for key, value in current.items():  # JSON turned tuples (e.g. Adam's betas) into lists
            if isinstance(value, tuple) and isinstance(group.get(key), list):
                group[key] = tuple(group[key])
        groups.append(group)
    optimizer.load_state_dict({"state": state, "param_groups": groups})

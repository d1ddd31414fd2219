"""Reading NVIDIA network pickles (stylegan2-ada-pytorch and stylegan3 code bases) without executing them.

NVIDIA's training writes `network-snapshot-*.pkl` as a plain pickle of a dict with `G`, `D`, `G_ema`,
`augment_pipe` and `training_set_kwargs`. Each network is pickled through `torch_utils.persistence`, which
stores the *source code* of its Python module next to the weights and runs that source with `exec` on load.
A plain `pickle.load` therefore runs whatever code the file carries.

`SafeUnpickler` never imports or runs anything named by the file. Its `find_class` answers only from a fixed
allow-list of data constructors (ordered dicts, NumPy scalars and dtypes, tensor and storage rebuilders); every
other global (`os.system`, `builtins.eval`, an unknown class, ...) is refused with `UnsafePickleError` the moment
the pickle asks for it, before any of the file's instructions can call it. Persistence records become inert
`PersistentRecord`s (class name + state dict; the embedded source is ignored), and `build_network` turns a record
into our own class (`medgan_core.networks.Generator` / `Discriminator`, `medgan_core.augment.AugmentPipe`) from its
recorded constructor arguments, then loads its parameters and buffers with `strict=True`.

Tensor storages inside NVIDIA pickles are small legacy `torch.save` blobs (`torch.storage._load_from_bytes`);
they are read with `torch.load(..., weights_only=True)`, PyTorch's own restricted unpickler.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import io
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

_numpy_core = getattr(np, "_core", None) or np.core  # numpy 2 moved numpy.core to numpy._core


class CheckpointError(ValueError):
    """The file is not a network pickle or checkpoint this package can read (named in the message)."""


class UnsafePickleError(CheckpointError, pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list; nothing from it was executed."""


# Class names of NVIDIA's StyleGAN2 networks (both code bases) and the ADA augmentation pipeline. A persistence
# record naming anything else is refused.
STYLEGAN2_CLASS_NAMES = frozenset(
    {
        "Generator",
        "MappingNetwork",
        "SynthesisNetwork",
        "SynthesisBlock",
        "SynthesisLayer",
        "ToRGBLayer",
        "Discriminator",
        "DiscriminatorBlock",
        "DiscriminatorEpilogue",
        "MinibatchStdLayer",
        "FullyConnectedLayer",
        "Conv2dLayer",
        "AugmentPipe",
    }
)
# Classes only found in StyleGAN3 (alias-free) generators: named in a clearer error than "unknown class".
_STYLEGAN3_ONLY_CLASS_NAMES = frozenset({"SynthesisInput"})


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict` (a dict with attribute access): plain data, no code."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


@dataclass
class PersistentRecord:
    """An unpickled `torch_utils.persistence` object, kept as data: its class name and its `__dict__` state."""

    class_name: str
    state: dict
    version: int | None = None
    has_source: bool = False

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args", ()) or ())

    @property
    def init_kwargs(self) -> dict:
        return to_plain(self.state.get("_init_kwargs", {}) or {})

    def submodules(self) -> dict[str, PersistentRecord]:
        modules = self.state.get("_modules", {}) or {}
        return {name: rec for name, rec in modules.items() if isinstance(rec, PersistentRecord)}

    def class_names(self) -> set[str]:
        """This record's class name and those of all nested records."""
        names = {self.class_name}
        for child in self.submodules().values():
            names |= child.class_names()
        return names

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers under the dotted names `torch.nn.Module.state_dict` would use."""
        tensors: dict[str, torch.Tensor] = {}
        for name, value in (self.state.get("_parameters", {}) or {}).items():
            if value is not None:
                tensors[prefix + name] = _as_tensor(value, prefix + name)
        skip = set(self.state.get("_non_persistent_buffers_set", ()) or ())
        for name, value in (self.state.get("_buffers", {}) or {}).items():
            if value is not None and name not in skip:
                tensors[prefix + name] = _as_tensor(value, prefix + name)
        for name, child in (self.state.get("_modules", {}) or {}).items():
            if isinstance(child, PersistentRecord):
                tensors.update(child.state_dict(prefix + name + "."))
            elif child is not None:
                raise CheckpointError(f"submodule {prefix + name!r} is a {type(child).__name__}, not a network")
        return tensors


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{name!r} should be a tensor, found {type(value).__name__}")
    return value.detach()


def to_plain(value: Any) -> Any:
    """EasyDicts -> dicts and tuples kept, recursively, so recorded kwargs are ordinary JSON-like data."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(to_plain(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------------------------------------------
# Allow-listed constructors. Each checks its arguments: they come from an untrusted file.


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise UnsafePickleError("malformed torch_utils.persistence record")
    class_name = meta.get("class_name")
    if class_name in _STYLEGAN3_ONLY_CLASS_NAMES:
        raise UnsafePickleError(
            f"persistence record of class {class_name!r}: this is a StyleGAN3 (alias-free) network; only "
            "StyleGAN2 networks are supported"
        )
    if class_name not in STYLEGAN2_CLASS_NAMES:
        raise UnsafePickleError(f"persistence record of unknown class {class_name!r}")
    return PersistentRecord(
        class_name=class_name,
        state=dict(meta["state"]),
        version=meta.get("version"),
        has_source=bool(meta.get("module_src")),
    )


def _load_storage_from_bytes(data: Any) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("torch.storage._load_from_bytes expects bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation notice
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a storage blob held a {type(storage).__name__}, not a storage")
    return storage


def _check_hooks(hooks: Any) -> None:
    if hooks is not None and (not isinstance(hooks, dict) or len(hooks) > 0):
        raise UnsafePickleError("a tensor in the pickle carries backward hooks")


def _check_view(num_elements: int, storage_offset, size, stride) -> None:
    """Refuse a tensor view reaching outside its storage (torch does not check this when rebuilding)."""
    if len(size) != len(stride) or storage_offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise UnsafePickleError("malformed tensor view")
    if all(n > 0 for n in size):
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= num_elements:
            raise UnsafePickleError(f"tensor view reaches element {last} of a storage of {num_elements}")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *_):
    _check_hooks(backward_hooks)
    if not isinstance(storage, torch.TypedStorage):
        raise UnsafePickleError("tensor rebuilt from something that is not a typed storage")
    size, stride, storage_offset = tuple(int(n) for n in size), tuple(int(s) for s in stride), int(storage_offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation notice
        _check_view(storage.size(), storage_offset, size, stride)
        return torch._utils._rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *_):
    _check_hooks(backward_hooks)
    if not isinstance(storage, torch.UntypedStorage) or not isinstance(dtype, torch.dtype):
        raise UnsafePickleError("malformed _rebuild_tensor_v3 record")
    size, stride, storage_offset = tuple(int(n) for n in size), tuple(int(s) for s in stride), int(storage_offset)
    _check_view(storage.nbytes() // dtype.itemsize, storage_offset, size, stride)
    return torch.empty((0,), dtype=dtype).set_(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_):
    _check_hooks(backward_hooks)
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("parameter rebuilt from something that is not a tensor")
    return data  # kept as a plain tensor: only its values are used


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter) or not isinstance(args, tuple):
        raise UnsafePickleError("tensor subclass record with a disallowed rebuild function")
    return func(*args)


def _numpy_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    if dtype.hasobject:
        raise UnsafePickleError("NumPy object dtype (it can hold arbitrary objects)")
    return dtype


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("malformed NumPy scalar")
    return _numpy_core.multiarray.scalar(dtype, bytes(data))


def _numpy_reconstruct(subtype, shape, dtype_code):
    if subtype is not np.ndarray:
        raise UnsafePickleError("NumPy array of a subclass")
    return _numpy_core.multiarray._reconstruct(np.ndarray, shape, dtype_code)


def _codecs_encode(text, encoding="latin1"):  # protocol-2 pickles spell bytes as codecs.encode(str, 'latin1')
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("codecs.encode outside the bytes idiom")
    return codecs.encode(text, "latin1")


_NUMPY_MULTIARRAY = {"scalar": _numpy_scalar, "_reconstruct": _numpy_reconstruct}
_TORCH_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
# module -> {name: constructor}, as a pickle names its globals.
_SAFE_GLOBALS: dict[str, dict[str, Any]] = {
    "torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
    "torch.storage": {"_load_from_bytes": _load_storage_from_bytes},
    "torch._utils": {
        "_rebuild_tensor_v2": _rebuild_tensor_v2,
        "_rebuild_tensor_v3": _rebuild_tensor_v3,
        "_rebuild_parameter": _rebuild_parameter,
    },
    "torch._tensor": {"_rebuild_from_type_v2": _rebuild_from_type_v2},
    "torch": {"Size": torch.Size} | {name: getattr(torch, name) for name in _TORCH_DTYPES},
    "collections": {"OrderedDict": collections.OrderedDict},
    "builtins": {"set": set, "frozenset": frozenset},
    "_codecs": {"encode": _codecs_encode},
    "dnnlib.util": {"EasyDict": EasyDict},
    "dnnlib": {"EasyDict": EasyDict},
    "numpy": {"dtype": _numpy_dtype, "ndarray": np.ndarray},
    "numpy.core.multiarray": _NUMPY_MULTIARRAY,  # pickles written under numpy 1.x
    "numpy._core.multiarray": _NUMPY_MULTIARRAY,  # ... and under numpy 2.x
}

_HINTS = {
    "dnnlib.tflib.network": "this is a TensorFlow-era StyleGAN pickle; convert it with NVIDIA's legacy.py first",
}


class SafeUnpickler(pickle.Unpickler):
    """A `pickle.Unpickler` whose `find_class` only hands out the allow-listed data constructors above."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # protocol-2 pickles spell builtins as __builtin__
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        target = _SAFE_GLOBALS.get(module, {}).get(name)
        if target is None:
            hint = _HINTS.get(module, "")
            raise UnsafePickleError(
                f"global '{module}.{name}' is not on the allow-list" + (f" ({hint})" if hint else "")
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("persistent ids (torch.save zip-style references) are not expected here")


def safe_unpickle(path: str | os.PathLike) -> Any:
    """Unpickle `path` with `SafeUnpickler`; errors name the file and say that nothing was executed."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(
            f"{path}: refused to load: {exc}. Nothing from the file was executed. Only NVIDIA StyleGAN2 network "
            "pickles (and medgan .safetensors checkpoints) can be read."
        ) from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a readable network pickle ({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------------------------------------------
# From records to our modules.


def _blocks_using_fp16(record: PersistentRecord) -> int:
    return sum(bool(child.state.get("use_fp16", False)) for child in record.submodules().values())


def _first_conv_clamp(record: PersistentRecord) -> Any:
    """The `conv_clamp` attribute of the first nested layer that records one (None when none does)."""
    if "conv_clamp" in record.state and record.class_name in ("SynthesisLayer", "Conv2dLayer"):
        return record.state["conv_clamp"]
    for child in record.submodules().values():
        value = _first_conv_clamp(child)
        if value is not None:
            return value
    return None


def constructor_kwargs(record: PersistentRecord) -> dict:
    """Keyword arguments for our class, from the record's `_init_kwargs` in either NVIDIA code base's spelling.

    stylegan2-ada-pytorch's Generator takes `synthesis_kwargs={...}` where stylegan3's takes `**synthesis_kwargs`,
    and the two code bases default `num_fp16_res`/`conv_clamp` differently; arguments the record leaves to a
    default are read back from the attributes its layers recorded, so the rebuilt network computes the same thing.
    """
    kwargs = dict(record.init_kwargs)
    kwargs.pop("class_name", None)
    if record.class_name == "Generator":
        kwargs.update(kwargs.pop("synthesis_kwargs", None) or {})
        synthesis = record.submodules().get("synthesis")
        if synthesis is not None:
            kwargs.setdefault("num_fp16_res", _blocks_using_fp16(synthesis))
            kwargs.setdefault("conv_clamp", _first_conv_clamp(synthesis))
    elif record.class_name == "Discriminator":
        kwargs.setdefault("num_fp16_res", _blocks_using_fp16(record))
        kwargs.setdefault("conv_clamp", _first_conv_clamp(record))
    return kwargs


def _network_class(class_name: str) -> type[torch.nn.Module]:
    if class_name == "AugmentPipe":
        from medgan_core.augment import AugmentPipe

        return AugmentPipe
    from medgan_core import networks

    if class_name not in ("Generator", "Discriminator"):
        raise CheckpointError(f"a top-level {class_name} is not a network this package rebuilds")
    return getattr(networks, class_name)


def build_network(record: PersistentRecord, path: str | os.PathLike, role: str) -> torch.nn.Module:
    """Our module for `record` (constructed from its recorded arguments), with its tensors loaded strictly."""
    cls = _network_class(record.class_name)
    kwargs = constructor_kwargs(record) if record.class_name != "AugmentPipe" else dict(record.init_kwargs)
    try:
        module = cls(*record.init_args, **kwargs)
    except TypeError as exc:
        raise CheckpointError(f"{path}: cannot rebuild {role} ({record.class_name}) from {kwargs}: {exc}") from exc
    state = record.state_dict()
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: {role} tensors do not fit {record.class_name}({kwargs}): {exc}") from exc
    return module


@dataclass
class NvidiaSnapshot:
    """The raw content of a network pickle: records for the networks, plain data for the rest."""

    records: dict[str, PersistentRecord] = field(default_factory=dict)
    training_set_kwargs: dict | None = None
    augment_p: float | None = None


def read_nvidia_snapshot(path: str | os.PathLike) -> NvidiaSnapshot:
    """Unpickle `path` safely and sort its content; raises CheckpointError if it is not a network pickle."""
    data = safe_unpickle(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of networks (G, D, G_ema, ...), found {type(data).__name__}")
    snapshot = NvidiaSnapshot()
    for key in ("G", "D", "G_ema", "augment_pipe"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, PersistentRecord):
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a persistent network")
        snapshot.records[key] = value
    if not any(key in snapshot.records for key in ("G", "D", "G_ema")):
        raise CheckpointError(f"{path}: no G, D or G_ema network in the pickle (keys: {sorted(data)})")
    if isinstance(data.get("training_set_kwargs"), dict):
        snapshot.training_set_kwargs = to_plain(data["training_set_kwargs"])
    pipe = snapshot.records.get("augment_pipe")
    if pipe is not None:
        p = (pipe.state.get("_buffers", {}) or {}).get("p")
        if isinstance(p, torch.Tensor) and p.numel() == 1:
            snapshot.augment_p = float(p.item())
    return snapshot


def load_nvidia_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Networks of an NVIDIA pickle as our modules (on CPU, training mode untouched); see `load_network`."""
    snapshot = read_nvidia_snapshot(path)
    result: dict[str, Any] = {"augment_p": snapshot.augment_p, "training_set_kwargs": snapshot.training_set_kwargs}
    for key in ("G", "D", "G_ema"):
        record = snapshot.records.get(key)
        result[key] = build_network(record, path, key) if record is not None else None
    result["augment_pipe"] = None
    pipe = snapshot.records.get("augment_pipe")
    if pipe is not None:
        result["augment_pipe"] = _build_augment_pipe(pipe, path)
    return result


def _build_augment_pipe(record: PersistentRecord, path: str | os.PathLike) -> torch.nn.Module | None:
    """Our AugmentPipe with the recorded kwargs and p; None (with a warning) when it is not available."""
    try:
        from medgan_core.augment import AugmentPipe
    except ImportError:
        warnings.warn(f"{path}: medgan_core.augment is not available; returning only p", stacklevel=3)
        return None
    kwargs = record.init_kwargs
    try:
        pipe = AugmentPipe(*record.init_args, **kwargs)
    except TypeError as exc:
        raise CheckpointError(f"{path}: cannot rebuild AugmentPipe from {kwargs}: {exc}") from exc
    state = record.state_dict()
    ours = pipe.state_dict()
    fitting = {name: value for name, value in state.items() if name in ours and ours[name].shape == value.shape}
    pipe.load_state_dict(fitting, strict=False)
    if set(fitting) != set(ours) or set(fitting) != set(state):  # p is the only learned state; others constants
        warnings.warn(f"{path}: AugmentPipe buffers differ from the pickle's; loaded {sorted(fitting)}", stacklevel=3)
    return pipe

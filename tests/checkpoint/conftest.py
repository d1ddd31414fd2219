"""Fixtures for checkpoint tests: tiny networks, and pickles written the way NVIDIA's persistence writes them.

`nvidia_pickle_writer` pickles our modules as `torch_utils.persistence` records (class name + `__dict__`-style
state with `_init_kwargs`), with stand-in modules registered under NVIDIA's module names only while pickling, so
the files name exactly the globals NVIDIA's pickles name (`torch_utils.persistence._reconstruct_persistent_obj`,
`dnnlib.util.EasyDict`, `numpy.core.multiarray.scalar` or `numpy._core.multiarray.scalar`, torch's tensor
rebuilders). No NVIDIA object is pickled.
"""

from __future__ import annotations

import collections
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from medgan_core.networks import Discriminator, Generator

TINY_G = dict(
    z_dim=8,
    c_dim=0,
    w_dim=8,
    img_resolution=8,
    img_channels=3,
    mapping_kwargs={"num_layers": 2},
    channel_base=64,
    channel_max=16,
    num_fp16_res=0,
    conv_clamp=None,
)
TINY_D = dict(
    c_dim=0,
    img_resolution=8,
    img_channels=3,
    channel_base=64,
    channel_max=16,
    num_fp16_res=0,
    conv_clamp=None,
    epilogue_kwargs={"mbstd_group_size": 2},
)


def tiny_generator(seed: int = 0, **overrides) -> Generator:
    torch.manual_seed(seed)
    return Generator(**{**TINY_G, **overrides})


def tiny_discriminator(seed: int = 0, **overrides) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(**{**TINY_D, **overrides})


def _reconstruct_persistent_obj(meta):  # stand-in: only its name is pickled
    raise AssertionError("never called")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


class EasyDict(dict):
    pass


EasyDict.__module__ = "dnnlib.util"


def _numpy1_scalar(dtype, data):  # stand-in for numpy 1.x's numpy.core.multiarray.scalar
    raise AssertionError("never called")


_numpy1_scalar.__module__ = "numpy.core.multiarray"
_numpy1_scalar.__qualname__ = "scalar"
_numpy1_scalar.__name__ = "scalar"

_SIMPLE = (int, float, bool, str, type(None), np.floating)


def _easy(value):
    if isinstance(value, dict):
        return EasyDict({key: _easy(item) for key, item in value.items()})
    return value


def persistence_meta(
    module: torch.nn.Module, init_kwargs: dict | None = None, class_name: str | None = None, module_src: str = ""
) -> dict:
    """The `meta` dict NVIDIA's persistence decorator pickles for `module` (children stay modules)."""
    state = {
        "training": module.training,
        "_parameters": collections.OrderedDict(module._parameters),
        "_buffers": collections.OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_modules": collections.OrderedDict(module._modules),
        "_init_args": (),
        "_init_kwargs": _easy(dict(init_kwargs if init_kwargs is not None else getattr(module, "init_kwargs", {}))),
    }
    for key, value in vars(module).items():
        if not key.startswith("_") and key != "init_kwargs" and isinstance(value, _SIMPLE):
            state[key] = np.float64(value) if key.endswith("gain") else value  # NVIDIA's gains are numpy floats
    return dict(
        type="class", version=6, module_src=module_src, class_name=class_name or type(module).__name__, state=state
    )


class FakeNvidiaPickler(pickle.Pickler):
    def __init__(self, file, protocol: int, numpy_era: int, overrides: dict):
        super().__init__(file, protocol=protocol)
        self.numpy_era = numpy_era
        self.overrides = overrides  # id(module) -> meta, for hand-made records

    def reducer_override(self, obj):
        if isinstance(obj, torch.nn.Module):
            meta = self.overrides.get(id(obj)) or persistence_meta(obj)
            return _reconstruct_persistent_obj, (meta,)
        if self.numpy_era == 1 and isinstance(obj, np.floating):
            return _numpy1_scalar, (obj.dtype, obj.tobytes())
        return NotImplemented


@pytest.fixture
def nvidia_pickle_writer(monkeypatch):
    """write(path, snapshot: dict, numpy_era=2, protocol=4, overrides={id(module): meta}) -> path."""
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    dnnlib_util = types.ModuleType("dnnlib.util")
    dnnlib_util.EasyDict = EasyDict
    numpy1 = types.ModuleType("numpy.core.multiarray")
    numpy1.scalar = _numpy1_scalar
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
    monkeypatch.setitem(sys.modules, "dnnlib", types.ModuleType("dnnlib"))
    monkeypatch.setitem(sys.modules, "dnnlib.util", dnnlib_util)

    def write(path, snapshot, numpy_era=2, protocol=4, overrides=None):
        with monkeypatch.context() as patch:
            if numpy_era == 1:
                patch.setitem(sys.modules, "numpy.core.multiarray", numpy1)
            with open(path, "wb") as f:
                FakeNvidiaPickler(f, protocol, numpy_era, overrides or {}).dump(snapshot)
        return path

    return write


@pytest.fixture
def easy_dict():
    return _easy


@pytest.fixture
def make_generator():
    return tiny_generator


@pytest.fixture
def make_discriminator():
    return tiny_discriminator


@pytest.fixture
def make_meta():
    """persistence_meta(module, init_kwargs=None, class_name=None, module_src='') -> NVIDIA's record dict."""
    return persistence_meta

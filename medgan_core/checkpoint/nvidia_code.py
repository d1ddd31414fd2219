"""NVIDIA's own StyleGAN code, imported from a checkout the user names (never vendored in this package).

`medgan export` builds network pickles out of NVIDIA's classes so that NVIDIA's tools (`legacy.load_network_pkl`,
`gen_images.py`, `calc_metrics.py`) read them as their own. The classes come from a checkout of NVlabs/stylegan3
or NVlabs/stylegan2-ada-pytorch: `--nvidia-src DIR`, else $MEDGAN_NVIDIA_SRC.

Importing that code runs it, as running NVIDIA's scripts would; only do it for a checkout you trust. The checkout's
folder goes to the front of `sys.path` (NVIDIA's pickles name top-level modules `dnnlib`, `torch_utils`,
`training`), so one process can use one checkout only.

setuptools 81 and later no longer ship `pkg_resources`, which NVIDIA's `torch_utils/ops` import for
`parse_version` alone; when it is missing, a stand-in module with `packaging.version.parse` is registered while
those modules are imported, and removed afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from medgan_core.checkpoint.nvidia_pickle import CheckpointError

NVIDIA_SRC_ENV = "MEDGAN_NVIDIA_SRC"
NVIDIA_REPO_URL = "https://github.com/NVlabs/stylegan3"
_TOP_LEVEL = ("dnnlib", "torch_utils", "training", "legacy", "metrics")


class NvidiaSourceError(CheckpointError):
    """No usable checkout of NVIDIA's code (the message says how to point at one)."""


@dataclass
class NvidiaCode:
    """NVIDIA's modules from one checkout. code_base: 'stylegan3' or 'stylegan2-ada-pytorch'."""

    root: Path
    code_base: str
    networks: types.ModuleType  # training.networks_stylegan2 (stylegan3) or training.networks (ada)
    augment: types.ModuleType  # training.augment
    dnnlib: types.ModuleType
    legacy: types.ModuleType


def _how_to() -> str:
    return (
        f"pass --nvidia-src DIR or set {NVIDIA_SRC_ENV}=DIR to a checkout of NVIDIA's code "
        f"(git clone {NVIDIA_REPO_URL}, or NVlabs/stylegan2-ada-pytorch)"
    )


def resolve_nvidia_src(nvidia_src: str | os.PathLike | None = None) -> Path:
    """The checkout to use: `nvidia_src`, else $MEDGAN_NVIDIA_SRC; NvidiaSourceError when neither is usable."""
    value = nvidia_src if nvidia_src is not None else os.environ.get(NVIDIA_SRC_ENV)
    if not value:
        raise NvidiaSourceError(f"no checkout of NVIDIA's StyleGAN code given: {_how_to()}")
    root = Path(value).expanduser().resolve()
    needed = ("legacy.py", "dnnlib/__init__.py", "torch_utils/persistence.py", "training/augment.py")
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise NvidiaSourceError(f"{root} is not a checkout of NVIDIA's StyleGAN code (missing {missing}): {_how_to()}")
    return root


@contextlib.contextmanager
def _pkg_resources_stand_in():
    """A `pkg_resources` with `parse_version` while NVIDIA's modules import, when setuptools has none; removed
    afterwards (other tools take a `pkg_resources` in sys.modules for the real one)."""
    try:
        importlib.import_module("pkg_resources")
    except ImportError:
        from packaging.version import parse

        stand_in = types.ModuleType("pkg_resources")
        stand_in.parse_version = parse
        sys.modules["pkg_resources"] = stand_in
        try:
            yield
        finally:
            if sys.modules.get("pkg_resources") is stand_in:
                del sys.modules["pkg_resources"]
    else:
        yield


def _loaded_from(root: Path) -> None:
    """Refuse a second checkout: modules already imported from elsewhere would be mixed with this one's."""
    for name in _TOP_LEVEL:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) if module is not None else None
        if origin and root not in Path(origin).resolve().parents:
            raise NvidiaSourceError(
                f"module {name!r} is already imported from {origin}, not from {root}; one process can use one "
                "checkout of NVIDIA's code"
            )


def import_nvidia(nvidia_src: str | os.PathLike | None = None) -> NvidiaCode:
    """Import NVIDIA's networks, augmentation pipe, dnnlib and legacy from the checkout (see the module docstring)."""
    root = resolve_nvidia_src(nvidia_src)
    _loaded_from(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    stylegan3 = (root / "training" / "networks_stylegan2.py").is_file()
    try:
        with _pkg_resources_stand_in():  # the modules that read pkg_resources, all imported here
            for name in ("torch_utils.ops.conv2d_gradfix", "torch_utils.ops.grid_sample_gradfix"):
                if (root / (name.replace(".", "/") + ".py")).is_file():
                    importlib.import_module(name)
            networks = importlib.import_module("training.networks_stylegan2" if stylegan3 else "training.networks")
            augment = importlib.import_module("training.augment")
            dnnlib = importlib.import_module("dnnlib")
            legacy = importlib.import_module("legacy")
    except ImportError as exc:
        raise NvidiaSourceError(f"{root}: importing NVIDIA's code failed ({exc}); check its requirements") from exc
    code_base = "stylegan3" if stylegan3 else "stylegan2-ada-pytorch"
    return NvidiaCode(root, code_base, networks, augment, dnnlib, legacy)

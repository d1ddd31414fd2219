"""Feature detectors: the FID Inception-v3 from either weight format, behind one call `detector(images)`.

## The two weight formats and how their inputs differ

pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`:
- network: our `FIDInceptionV3` (PyTorch code in this package), weights read with `torch.load(weights_only=True)`;
- input: uint8 / 255 -> [0, 1] -> bilinear resize to 299 x 299 (`F.interpolate`, `align_corners=False`, no
  antialiasing) -> 2 x - 1, i.e. [-1, 1], exactly as pytorch-fid; grayscale repeated to 3 channels.

NVIDIA's `inception-2015-12-05.pkl` (StyleGAN3, EDM) or `.pt` (StyleGAN2-ADA):
- network: NVIDIA's TorchScript graph from the file (`torch.jit.load`; a `.pkl` through an allow-list unpickler);
- input: uint8 0..255 passed as is with `return_features=True`; the graph scales and resizes to 299 x 299 itself
  (NVIDIA's own resampling); grayscale repeated to 3 channels, as NVIDIA's `metric_utils` does.

Both compute the 2048-d pool3 features of the same TensorFlow graph, but the resampling to 299 x 299 differs, so
FIDs from the two formats are close but not identical (we could not measure by how much: neither file can be
downloaded in our build environment); compare numbers only within one detector. Results record which detector
produced them (`detector.tag`).

Safety: nothing in a weight file is executed as Python. A TorchScript archive holds a graph of tensor operations
run by the TorchScript interpreter, not Python code. A `.pkl` is read by `SafeDetectorUnpickler`, which resolves
only tensor-rebuilding functions, `collections.OrderedDict`, `torch.jit.load` on in-memory bytes and NVIDIA's
`torch_utils.persistence` records (turned into inert `PersistentRecord`s: their `module_src` is never run). Any
other global in the pickle is refused with an error naming the file. Only the TorchScript module found inside is
used; a pickle holding nothing but Python source cannot be used (convert it, or use pytorch-fid's weights).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

from medgan_core.metrics.inception import FEATURE_DIM, FIDInceptionV3
from medgan_core.metrics.weights import resolve_inception_weights, sha256_file


class PersistentRecord:
    """Inert stand-in for an NVIDIA `torch_utils.persistence` object: its metadata dict, no code executed."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta


def _load_tensor_bytes(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _load_torchscript_bytes(source):
    data = source.getvalue() if isinstance(source, io.BytesIO) else source
    return torch.jit.load(io.BytesIO(data), map_location="cpu")


class SafeDetectorUnpickler(pickle.Unpickler):
    """Allow-list unpickler for detector pickles (see the module docstring)."""

    _ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_tensor_bytes,
        ("torch.jit._serialization", "load"): _load_torchscript_bytes,
        ("torch.jit", "load"): _load_torchscript_bytes,
        ("_io", "BytesIO"): io.BytesIO,
        ("io", "BytesIO"): io.BytesIO,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentRecord,
        ("builtins", "bytearray"): bytearray,
    }

    def __init__(self, file, source_name: str) -> None:
        super().__init__(file)
        self.source_name = source_name

    def find_class(self, module: str, name: str):
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(
                f"{self.source_name}: refusing to load '{module}.{name}' from a detector pickle (only tensors and "
                "TorchScript are accepted; nothing in the file is executed)"
            )
        return target


def _find_script_module(obj, depth: int = 0):
    """Depth-first search for a TorchScript module (or a TorchScript archive in bytes) inside unpickled data."""
    if depth > 6:
        return None
    if isinstance(obj, torch.jit.ScriptModule):
        return obj
    if isinstance(obj, (bytes, bytearray)) and bytes(obj[:2]) == b"PK":
        return _load_torchscript_bytes(bytes(obj))
    children = []
    if isinstance(obj, PersistentRecord):
        children = [obj.meta.get("state")] + list(obj.meta.values())
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    for child in children:
        found = _find_script_module(child, depth + 1)
        if found is not None:
            return found
    return None


class InceptionDetector:
    """uint8 images [N, 1 or 3, H, W] -> float32 pool3 features [N, 2048] on `device`.

    kind: 'pytorch-fid' (our FIDInceptionV3 with pytorch-fid's weights) or 'nvidia' (NVIDIA's TorchScript graph).
    tag: kind plus the first 16 hex digits of the weight file's SHA-256; part of every real-statistics cache key.
    """

    feature_dim = FEATURE_DIM

    def __init__(self, network: torch.nn.Module, kind: str, weights_sha256: str, device="cpu") -> None:
        self.network = network
        self.kind = kind
        self.weights_sha256 = weights_sha256
        self.device = torch.device(device)
        self.tag = f"{kind}-{weights_sha256[:16]}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"detectors take uint8 images, got {images.dtype}")
        images = images.to(self.device)
        with torch.inference_mode():
            if self.kind == "nvidia":
                if images.shape[1] == 1:
                    images = images.repeat(1, 3, 1, 1)
                features = self.network(images, return_features=True)
            else:
                features = self.network(images)
        return features.to(torch.float32)


def build_pytorch_fid_detector(state_dict: dict, weights_sha256: str, device="cpu") -> InceptionDetector:
    """Our FIDInceptionV3 with `state_dict` loaded strictly, folded and channels-last for speed."""
    network = FIDInceptionV3()
    network.load_state_dict(state_dict, strict=True)
    network = network.to(device).optimize_for_inference(channels_last=True)
    return InceptionDetector(network, "pytorch-fid", weights_sha256, device)


def load_detector_file(path: str | os.PathLike, device="cpu") -> InceptionDetector:
    """Load a weight file of either format (detected from its content, not its name)."""
    path = Path(path)
    weights_sha256 = sha256_file(path)
    with open(path, "rb") as f:
        starts_as_zip = f.read(4) == b"PK\x03\x04"  # not zipfile.is_zipfile: a pickle may embed an archive
    if starts_as_zip:
        with zipfile.ZipFile(path) as archive:
            is_torchscript = any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())
        if is_torchscript:
            network = torch.jit.load(str(path), map_location=device).eval()
            return InceptionDetector(network, "nvidia", weights_sha256, device)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as torch_error:  # not a torch.save file: try an NVIDIA detector pickle
        try:
            with open(path, "rb") as f:
                unpickled = SafeDetectorUnpickler(f, str(path)).load()
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{path}: not a usable Inception weight file: {exc}") from torch_error
        except Exception as exc:
            raise ValueError(f"{path}: not an Inception weight file this package can read ({exc})") from exc
        network = _find_script_module(unpickled)
        if network is None:
            raise ValueError(
                f"{path}: this detector pickle holds no TorchScript module (only Python source, which medgan never "
                "executes); use pytorch-fid's pt_inception-2015-12-05-6726825d.pth or NVIDIA's TorchScript "
                "inception-2015-12-05.pt instead"
            ) from torch_error
        return InceptionDetector(network.to(device).eval(), "nvidia", weights_sha256, device)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (pytorch-fid's format), got {type(state)}")
    try:
        return build_pytorch_fid_detector(state, weights_sha256, device)
    except RuntimeError as exc:
        raise ValueError(f"{path}: not the FID Inception-v3 state dict pytorch-fid uses: {exc}") from exc


_DETECTOR_CACHE: dict[tuple[str, float, str], InceptionDetector] = {}


def load_inception(inception=None, device="cpu", cache_dir=None, download=None, progress=True) -> InceptionDetector:
    """The Inception detector for `inception` (a path, an InceptionDetector, or None to resolve as in weights.py).

    Detectors are kept per (file, modification time, device) for the life of the process, so a trainer calling
    metrics at every snapshot loads the weights once.
    """
    if isinstance(inception, InceptionDetector) or callable(inception) and hasattr(inception, "feature_dim"):
        return inception
    path = resolve_inception_weights(inception, cache_dir=cache_dir, download=download, progress=progress)
    key = (str(path.resolve()), path.stat().st_mtime, str(torch.device(device)))
    if key not in _DETECTOR_CACHE:
        _DETECTOR_CACHE[key] = load_detector_file(path, device)
    return _DETECTOR_CACHE[key]

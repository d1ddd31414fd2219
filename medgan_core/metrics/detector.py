"""Feature detectors: the FID Inception-v3 from either weight format, behind one call `detector(images)`; the same
for its class probabilities (Inception Score) and for VGG16 (precision/recall, see vgg16.py).

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

from medgan_core.metrics.inception import FEATURE_DIM, FIDInceptionV3, rgb_uint8
from medgan_core.metrics.vgg16 import FEATURE_DIM as VGG16_FEATURE_DIM
from medgan_core.metrics.vgg16 import VGG16
from medgan_core.metrics.weights import resolve_inception_weights, resolve_vgg16_weights, sha256_file


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

    _ALLOWED = {  # module -> {name: constructor}, as a pickle names its globals
        "collections": {"OrderedDict": OrderedDict},
        "torch._utils": {
            "_rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
            "_rebuild_parameter": torch._utils._rebuild_parameter,
        },
        "torch.storage": {"_load_from_bytes": _load_tensor_bytes},
        "torch.jit._serialization": {"load": _load_torchscript_bytes},
        "torch.jit": {"load": _load_torchscript_bytes},
        "_io": {"BytesIO": io.BytesIO},
        "io": {"BytesIO": io.BytesIO},
        "torch_utils.persistence": {"_reconstruct_persistent_obj": PersistentRecord},
        "builtins": {"bytearray": bytearray},
    }

    def __init__(self, file, source_name: str) -> None:
        super().__init__(file)
        self.source_name = source_name

    def find_class(self, module: str, name: str):
        target = self._ALLOWED.get(module, {}).get(name)
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


class FeatureDetector:
    """uint8 images [N, 1 or 3, H, W] -> float32 features [N, feature_dim] on `device`.

    kind: 'nvidia' (NVIDIA's TorchScript graph, called with return_features=True on 3-channel uint8 input, grey
    repeated as NVIDIA's metric_utils does) or the name of our PyTorch weights (the network prepares its input).
    tag: `tag_prefix` + kind + the first 16 hex digits of the weight file's SHA-256; part of every real-statistics
    cache key.
    """

    feature_dim: int
    tag_prefix = ""

    def __init__(self, network: torch.nn.Module, kind: str, weights_sha256: str, device="cpu") -> None:
        self.network = network
        self.kind = kind
        self.weights_sha256 = weights_sha256
        self.device = torch.device(device)
        self.tag = f"{self.tag_prefix}{kind}-{weights_sha256[:16]}"

    def network_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 1 or 3, H, W] -> uint8 [N, 3, H, W] on the detector's device (grey repeated)."""
        return rgb_uint8(images, "detectors").to(self.device).contiguous()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = self.network_input(images)
        with torch.inference_mode():
            if self.kind == "nvidia":
                return self.network(images, return_features=True).to(torch.float32)
            return self.network(images).to(torch.float32)


class InceptionDetector(FeatureDetector):
    """FID Inception-v3 pool3 features [N, 2048]; kind 'pytorch-fid' (our FIDInceptionV3) or 'nvidia'."""

    feature_dim = FEATURE_DIM


def build_pytorch_fid_detector(state_dict: dict, weights_sha256: str, device="cpu") -> InceptionDetector:
    """Our FIDInceptionV3 with `state_dict` loaded strictly, folded and channels-last for speed."""
    network = FIDInceptionV3()
    network.load_state_dict(state_dict, strict=True)
    network = network.to(device).optimize_for_inference(channels_last=True)
    return InceptionDetector(network, "pytorch-fid", weights_sha256, device)


def read_weight_file(path: str | os.PathLike) -> torch.jit.ScriptModule | dict:
    """A detector weight file, recognised by content: NVIDIA's TorchScript graph (a .pt archive, or a .pkl read by
    `SafeDetectorUnpickler`) or a plain state dict of tensors (`torch.load(weights_only=True)`)."""
    path = Path(path)
    with open(path, "rb") as f:
        starts_as_zip = f.read(4) == b"PK\x03\x04"  # not zipfile.is_zipfile: a pickle may embed an archive
    if starts_as_zip:
        with zipfile.ZipFile(path) as archive:
            is_torchscript = any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())
        if is_torchscript:
            return torch.jit.load(str(path), map_location="cpu").eval()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as torch_error:  # not a torch.save file: try an NVIDIA detector pickle
        try:
            with open(path, "rb") as f:
                unpickled = SafeDetectorUnpickler(f, str(path)).load()
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{path}: not a usable detector weight file: {exc}") from torch_error
        except Exception as exc:
            raise ValueError(f"{path}: not a detector weight file this package can read ({exc})") from exc
        network = _find_script_module(unpickled)
        if network is None:
            raise ValueError(
                f"{path}: this detector pickle holds no TorchScript module (only Python source, which medgan never "
                "executes); use the PyTorch weight file or NVIDIA's TorchScript .pt instead"
            ) from torch_error
        return network.eval()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def load_detector_file(path: str | os.PathLike, device="cpu") -> InceptionDetector:
    """Load an Inception weight file of either format (detected from its content, not its name)."""
    content = read_weight_file(path)
    weights_sha256 = sha256_file(path)
    if isinstance(content, torch.jit.ScriptModule):
        return InceptionDetector(content.to(device), "nvidia", weights_sha256, device)
    try:
        return build_pytorch_fid_detector(content, weights_sha256, device)
    except RuntimeError as exc:
        raise ValueError(f"{path}: not the FID Inception-v3 state dict pytorch-fid uses: {exc}") from exc


class InceptionProbabilities:
    """uint8 images -> the Inception graph's class probabilities [N, 1008] for the Inception Score.

    As NVIDIA's is50k (`no_output_bias=True`, matching Salimans et al.'s code): softmax(pool3 @ W^T) with the
    1008-way classifier's weight W and without its bias. tag: the Inception detector's tag + '-probs'.
    """

    feature_dim = 1008

    def __init__(self, detector: InceptionDetector) -> None:
        self.detector = detector
        self.tag = f"{detector.tag}-probs"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        network = self.detector.network
        images = self.detector.network_input(images)
        with torch.inference_mode():
            if self.detector.kind == "nvidia":
                return network(images, no_output_bias=True).to(torch.float32)
            logits = network(images) @ network.fc.weight.t()  # [N, 2048] @ [2048, 1008]
            return torch.softmax(logits, dim=1).to(torch.float32)


class VGG16Detector(FeatureDetector):
    """VGG16 fc2+ReLU features [N, 4096] (NVIDIA's precision/recall detector); kind 'torchvision' (our VGG16 with
    torchvision's weights) or 'nvidia' (NVIDIA's TorchScript vgg16.pt/.pkl). The tag starts with 'vgg16-'."""

    feature_dim = VGG16_FEATURE_DIM
    tag_prefix = "vgg16-"


def load_vgg16_file(path: str | os.PathLike, device="cpu") -> VGG16Detector:
    """A VGG16 detector from torchvision's state dict or NVIDIA's TorchScript file."""
    content = read_weight_file(path)
    weights_sha256 = sha256_file(path)
    if isinstance(content, torch.jit.ScriptModule):
        return VGG16Detector(content.to(device), "nvidia", weights_sha256, device)
    network = VGG16()
    try:
        network.load_state_dict(content, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: not torchvision's VGG16 state dict (vgg16-397923af.pth): {exc}") from exc
    return VGG16Detector(network.to(device), "torchvision", weights_sha256, device)


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


def load_vgg16(vgg16=None, device="cpu", cache_dir=None, download=None, progress=True) -> VGG16Detector:
    """The VGG16 detector for `vgg16` (a path, a VGG16Detector, or None to resolve as in weights.py), kept per
    (file, modification time, device) like the Inception detector."""
    if callable(vgg16) and hasattr(vgg16, "feature_dim"):
        return vgg16
    path = resolve_vgg16_weights(vgg16, cache_dir=cache_dir, download=download, progress=progress)
    key = ("vgg16:" + str(path.resolve()), path.stat().st_mtime, str(torch.device(device)))
    if key not in _DETECTOR_CACHE:
        _DETECTOR_CACHE[key] = load_vgg16_file(path, device)
    return _DETECTOR_CACHE[key]

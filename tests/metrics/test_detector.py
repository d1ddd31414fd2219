"""Loading detectors from both weight formats, safely."""

import pickle
import sys
import types

import pytest
import torch

from medgan_core.metrics.detector import load_detector_file, load_inception
from medgan_core.metrics.weights import sha256_file


class _TinyTorchScriptDetector(torch.nn.Module):
    """Stands in for NVIDIA's graph: same call signature, cheap features."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        features = x.to(torch.float32).mean(dim=[2, 3])  # [N, 3]
        if return_features:
            return torch.cat([features, features * 2], dim=1)
        return features


@pytest.fixture
def torchscript_file(tmp_path):
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(_TinyTorchScriptDetector()), str(path))
    return path


def _expected(images):
    return _TinyTorchScriptDetector()(images.repeat(1, 3, 1, 1), return_features=True)


def test_pytorch_fid_weight_file(weights_file):
    detector = load_detector_file(weights_file)
    assert detector.kind == "pytorch-fid"
    assert detector.tag == f"pytorch-fid-{sha256_file(weights_file)[:16]}"


def test_torchscript_archive_gets_raw_uint8_and_gray_repeated(torchscript_file):
    detector = load_detector_file(torchscript_file)
    images = torch.randint(0, 256, (3, 1, 20, 24), dtype=torch.uint8)
    assert detector.kind == "nvidia"
    torch.testing.assert_close(detector(images), _expected(images))


@pytest.fixture
def fake_persistence(monkeypatch):
    """A stand-in `torch_utils.persistence` so the test can write pickles in NVIDIA's record layout."""
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("never called when loading")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return module


class _Record:
    def __init__(self, reconstruct, meta):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return self.reconstruct, (self.meta,)


def test_pickle_with_persistence_record_holding_torchscript(tmp_path, torchscript_file, fake_persistence):
    meta = {"type": "class", "version": 4, "module_src": "raise SystemExit('never executed')",
            "class_name": "Detector", "state": {"archive": torchscript_file.read_bytes()}}  # fmt: skip
    path = tmp_path / "inception-2015-12-05.pkl"
    path.write_bytes(pickle.dumps(_Record(fake_persistence._reconstruct_persistent_obj, meta)))
    detector = load_detector_file(path)
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    assert detector.kind == "nvidia"
    torch.testing.assert_close(detector(images), _expected(images))


def test_pickle_with_only_python_source_is_refused(tmp_path, fake_persistence):
    meta = {"module_src": "class Detector: pass", "class_name": "Detector", "state": {"w": [1.0]}}
    path = tmp_path / "source_only.pkl"
    path.write_bytes(pickle.dumps(_Record(fake_persistence._reconstruct_persistent_obj, meta)))
    with pytest.raises(ValueError, match="no TorchScript"):
        load_detector_file(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"detector": _Exploit(marker)}))
    with pytest.raises(ValueError, match="evil.pkl.*refusing to load"):
        load_detector_file(path)
    assert not marker.exists()


def test_unreadable_file_names_the_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not weights at all")
    with pytest.raises(ValueError, match="garbage.pth"):
        load_detector_file(path)


def test_load_inception_reuses_the_loaded_detector(weights_file):
    assert load_inception(weights_file) is load_inception(weights_file)

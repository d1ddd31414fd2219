"""Shared fixtures: where the shared reference material lives, and small helpers."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

# Without a GPU the fused-kernel tests (tests/ops/test_triton_*) run Triton's CPU interpreter. Triton fixes that
# choice when it is first imported (torch._dynamo imports it), so the switch is set before any test module loads.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# `medgan prep` creates a naming key in $XDG_CONFIG_HOME/medgan when none is given: the tests (and the processes
# they start) get a throw-away config folder, never the user's own.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="medgan-test-config-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], ignore_errors=True)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("MEDGAN_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the repository (or $MEDGAN_SHARED). Missing it is an error, never a skip."""
    if not (SHARED_DIR / "reference").is_dir():
        pytest.fail(
            f"shared reference material not found at {SHARED_DIR}/reference: check out ../shared beside the "
            "repository or set MEDGAN_SHARED to its path"
        )
    return SHARED_DIR


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    """`../shared/reference`: NVIDIA's StyleGAN2 reference figures."""
    return shared_dir / "reference"


@pytest.fixture(scope="session")
def parity_dir(reference_dir: Path) -> Path:
    """`../shared/reference/stylegan2_parity`: small G and D with official weights, inputs and outputs."""
    path = reference_dir / "stylegan2_parity"
    for name in ("config.json", "G.safetensors", "D.safetensors", "reference.npz", "network-snapshot.pkl"):
        if not (path / name).is_file():
            pytest.fail(f"reference file missing: {path / name}")
    return path


@pytest.fixture(scope="session")
def nvidia_src() -> Path:
    """A checkout of NVIDIA's code (NVlabs/stylegan3) named by $MEDGAN_NVIDIA_SRC; without it the test is skipped
    with the reason (`pytest -rs` prints it). A path that is not a checkout is an error, never a skip."""
    value = os.environ.get("MEDGAN_NVIDIA_SRC")
    if not value:
        pytest.skip("MEDGAN_NVIDIA_SRC is not set: point it at a checkout of NVlabs/stylegan3 to run NVIDIA checks")
    path = Path(value).expanduser()
    if not (path / "legacy.py").is_file() or not (path / "torch_utils").is_dir():
        pytest.fail(f"MEDGAN_NVIDIA_SRC={path} is not a checkout of NVlabs/stylegan3 (no legacy.py / torch_utils)")
    return path


@pytest.fixture(
    params=[
        "cpu",
        pytest.param(
            "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
        ),
    ]
)
def float16_device(request, monkeypatch) -> torch.device:
    """A device on which use_fp16 blocks really compute in float16: CUDA, or the CPU with the allow-list widened
    (NVIDIA's networks, and ours by default, keep float16 to CUDA), so CI runs the mixed-precision path too."""
    from medgan_core.networks import layers

    if request.param == "cpu":
        monkeypatch.setattr(layers, "FLOAT16_DEVICE_TYPES", frozenset({"cuda", "cpu"}))
    return torch.device(request.param)

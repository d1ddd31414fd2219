"""CPU smoke run of `medgan train` (32x32 grayscale, batch 8, 2 kimg, ADA + R1 + path length): every output
is written, a second run with the same seed gives identical losses, and the generator measurably learns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medgan_core.checkpoint import load_checkpoint, load_network
from medgan_core.networks import Generator
from medgan_core.training.dataset import ImageFolderDataset
from tests.training.conftest import TINY_NET

SMOKE_ARGS = [
    "--batch",
    "8",
    "--kimg",
    "2",
    "--tick",
    "0.5",
    "--snap",
    "2",
    "--gamma",
    "1",
    "--aug",
    "ada",
    "--seed",
    "7",
    "--metrics",
    "fid50k_full",
]  # metric: must warn (no Inception offline) and go on
LOSS_KEYS = [
    "Loss/G/loss",
    "Loss/D/loss",
    "Loss/r1_penalty",
    "Loss/D/reg",
    "Loss/pl_penalty",
    "Loss/G/reg",
    "Loss/scores/real",
    "Loss/scores/fake",
    "Loss/signs/real",
]


def medgan_train(args: list[str], timeout: float = 600, env_extra: dict | None = None):
    """Run `medgan train ...` in a subprocess on one CPU thread (the tests share 2 cores)."""
    # MEDGAN_INCEPTION at a missing file: fid50k_full is unavailable even where Inception weights exist, so the
    # smoke run exercises "warn once and go on" and never starts a 50k-image metric on a CPU
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MEDGAN_INCEPTION="/nonexistent/inception.pth")
    env.update(env_extra or {})
    command = [sys.executable, "-c", "from medgan_core.cli import main; main()", "train", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def read_stats(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, discs32) -> Path:
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    args = ["--outdir", str(run_dir.parent), "--data", str(discs32), "--run-dir", str(run_dir), *TINY_NET]
    args = [a for a in args if a not in ("--metrics", "none")] + SMOKE_ARGS
    result = medgan_train(args)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir / "console.txt").write_text(result.stdout + result.stderr)
    return run_dir


@pytest.mark.slow
def test_smoke_run_writes_every_output(smoke_run: Path):
    console = (smoke_run / "console.txt").read_text()
    assert console.count("metric fid50k_full unavailable") == 1  # warned once, training went on
    options = json.loads((smoke_run / "training_options.json").read_text())
    assert options["cli_options"]["aug"] == "ada" and options["loss_kwargs"]["r1_gamma"] == 1
    stats = read_stats(smoke_run)
    # tick 0 right after the first batch (kimg 0.008, as NVIDIA's), then each 0.5 kimg past the last tick
    assert [s["Progress/tick"]["mean"] for s in stats] == [0, 1, 2, 3, 4]
    assert [s["Progress/kimg"]["mean"] for s in stats] == pytest.approx([0.008, 0.512, 1.016, 1.52, 2.0])
    assert (smoke_run / "network-snapshot-000000.008.safetensors").is_file()  # snap 2: ticks 0, 2 and the last
    assert stats[-1]["Progress/kimg"]["mean"] == pytest.approx(2.0, abs=0.01)
    for line in stats:
        for key in [*LOSS_KEYS, "Timing/sec_per_kimg", "Timing/total_sec", "Progress/augment", "Resources/cpu_mem_gb"]:
            assert np.isfinite(line[key]["mean"]), key
    assert stats[0]["Loss/r1_penalty"]["num"] > 0 and stats[0]["Loss/pl_penalty"]["num"] > 0
    assert list(smoke_run.glob("events.out.tfevents.*"))
    for name in ["reals.png", "fakes_init.png", "fakes000002.png"]:
        image = Image.open(smoke_run / name)
        assert image.mode == "L" and image.size == (8 * 32, 4 * 32) and not image.info.get("text")
    snapshot = load_checkpoint(smoke_run / "network-snapshot-000002.safetensors")
    state = snapshot["record"]["training_state"]
    assert state["cur_nimg"] == 2000 and state["augment_p"] >= 0
    assert set(snapshot["networks"]) == {"G", "D", "G_ema", "augment_pipe"}
    assert any(k.startswith("optimizer.G.") for k in snapshot["extra_tensors"])
    assert float(snapshot["networks"]["augment_pipe"].p) == pytest.approx(state["augment_p"])
    assert load_network(smoke_run / "network-snapshot-000002.safetensors")["G_ema"] is not None
    assert not list(smoke_run.glob("*.tmp")) and not list(smoke_run.glob(".*.tmp"))


@pytest.mark.slow
def test_same_seed_gives_identical_losses(smoke_run: Path, discs32, tmp_path):
    run_dir = tmp_path / "again"
    args = ["--outdir", str(tmp_path), "--data", str(discs32), "--run-dir", str(run_dir), *TINY_NET]
    args = [a for a in args if a not in ("--metrics", "none")] + SMOKE_ARGS
    result = medgan_train(args)
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = read_stats(smoke_run), read_stats(run_dir)
    assert len(first) == len(second)
    for a, b in zip(first, second):
        for key in [*LOSS_KEYS, "Progress/augment"]:
            assert a[key] == b[key], key


def _pixel_moments(images: np.ndarray) -> np.ndarray:
    return np.array([images.mean(), images.std()])


@pytest.mark.slow
def test_training_closes_the_gap_to_the_real_pixel_statistics(smoke_run: Path, discs32):
    """Real discs: mean and std of pixel values. G_ema after 2 kimg must be at least twice as close as the
    untrained G (same latents) in |mean gap| + |std gap| (grey levels 0..255)."""
    reals = np.stack([img for img, _ in ImageFolderDataset(discs32)]).astype(np.float64)
    trained = load_checkpoint(smoke_run / "network-snapshot-000002.safetensors")["networks"]["G_ema"].eval()
    torch.manual_seed(0)
    untrained = Generator(**trained.init_kwargs).eval()
    z = torch.randn(128, trained.z_dim, generator=torch.Generator().manual_seed(1))

    def fakes(G):
        with torch.no_grad():
            images = G(z, torch.zeros(128, 0), noise_mode="const")
        return (images * 127.5 + 128).clamp(0, 255).numpy()

    gap_before = np.abs(_pixel_moments(fakes(untrained)) - _pixel_moments(reals)).sum()
    gap_after = np.abs(_pixel_moments(fakes(trained)) - _pixel_moments(reals)).sum()
    assert gap_after < 0.5 * gap_before, (gap_before, gap_after)

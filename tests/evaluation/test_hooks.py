import math

import numpy as np
import pytest
import torch

from medgan_core.metrics.runner import calc_metric, is_available
from medgan_core.utils.io import save_png


def test_trainer_hooks_run_through_the_metric_runner(tmp_path, phantom_family):
    data = tmp_path / "data"
    data.mkdir()
    for i, image in enumerate(phantom_family(40, seed=5)):
        save_png(image, data / f"{i:03d}.png")
    from medgan_core.networks import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=1, mapping_kwargs={"num_layers": 2},
                  channel_base=256, channel_max=16, num_fp16_res=0).eval()  # fmt: skip
    for name in ("mem1k", "msssim1k"):
        ok, reason = is_available(name)
        assert ok, reason
    mem = calc_metric("mem1k", G, str(data), "cpu", num_gen=24)
    assert mem["metric"] == "mem1k" and 0.0 <= mem["results"]["mem1k"] <= 1.0
    assert mem["results"]["mem1k"] <= 0.1  # an untrained generator copies nothing
    div = calc_metric("msssim1k", G, str(data), "cpu", num_gen=24)
    real = div["results"]["msssim1k_real"]
    assert not math.isnan(real) and 0.0 < real < 1.0
    assert np.isfinite(div["results"]["msssim1k"])


def test_hooks_skip_work_on_other_ranks(tmp_path):
    from medgan_core.evaluation.hooks import mem1k, msssim1k

    missing = tmp_path / "not-read"  # ranks other than 0 must not even read the data
    assert all(math.isnan(v) for v in mem1k(None, missing, rank=1, world_size=2).values())
    assert all(math.isnan(v) for v in msssim1k(None, missing, rank=1, world_size=2).values())


def tiny_generator_and_slices(tmp_path, slices):
    """A seeded untrained 64x64 generator and a folder of the given slices as PNGs."""
    from medgan_core.networks import Generator

    data = tmp_path / "data"
    data.mkdir()
    for i, image in enumerate(slices):
        save_png(image[..., 0], data / f"{i:03d}.png")
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=64, img_channels=1, mapping_kwargs={"num_layers": 2},
                  channel_base=256, channel_max=16, num_fp16_res=0).eval()  # fmt: skip
    return G, data


def test_frd256_hook_equals_frd_score_on_the_same_images(tmp_path, mni_slices):
    """The trainer's FRD metric against frd-score called directly on the generator's images and the real set."""
    from frd_score import compute_frd as frd_score_compute

    from medgan_core.evaluation.hooks import frd256
    from medgan_core.generate import generate_images

    G, data = tiny_generator_and_slices(tmp_path, mni_slices[10:40])
    ok, reason = is_available("frd256")
    assert ok, reason
    result = calc_metric("frd256", G, str(data), "cpu", num_gen=20)
    value = result["results"]["frd256"]
    generated = tmp_path / "generated"
    generated.mkdir()
    for i, image in enumerate(generate_images(G, range(20), noise_mode="const")):
        save_png(image[..., 0], generated / f"{i:06d}.png")
    expected = float(frd_score_compute([str(data), str(generated)], num_workers=1))
    assert value == pytest.approx(expected, rel=1e-3)  # one feature extraction for both values: our normalisation
    assert result["results"]["frd256_distance"] == pytest.approx(math.exp(expected), rel=1e-3)
    from medgan_core.evaluation.frd import frd_breakdown

    summary, _ = frd_breakdown(data, generated)
    varying = summary["log d_F^2, features that vary over the real set"]
    assert result["results"]["frd256_varying"] == pytest.approx(varying, rel=1e-9) and varying < value
    assert all(math.isnan(v) for v in frd256(None, tmp_path / "not-read", rank=1, world_size=2).values())


def test_frd256_reads_the_reals_features_once_per_real_set(tmp_path, mni_slices, monkeypatch):
    """The next snapshot's FRD reuses the real set's radiomic features (same value), a changed set recomputes them."""
    from pathlib import Path

    from medgan_core.evaluation import frd, hooks

    G, data = tiny_generator_and_slices(tmp_path, mni_slices[10:30])
    folders = []
    original = frd.folder_features
    monkeypatch.setattr(
        frd, "folder_features", lambda folder, *a: folders.append(Path(folder).name) or original(folder, *a)
    )
    hooks._REAL_FRD_FEATURES.clear()
    first, again = hooks.frd256(G, data, num_gen=12), hooks.frd256(G, data, num_gen=12)
    assert first == again and folders == ["real", "generated", "generated"]
    save_png(mni_slices[40][..., 0], data / "999.png")  # another real set
    hooks.frd256(G, data, num_gen=12)
    assert folders[3:] == ["real", "generated"]

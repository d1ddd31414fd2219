"""`export_nvidia_pickle` / `medgan export`: a medgan snapshot read by NVIDIA's own legacy.load_network_pkl.

The NVIDIA checks need a checkout of NVlabs/stylegan3 in $MEDGAN_NVIDIA_SRC (the `nvidia_src` fixture skips,
with the reason, without one); the error paths run everywhere.
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from medgan_core.augment import AugmentPipe
from medgan_core.checkpoint import export as export_module
from medgan_core.checkpoint import load_network, save_checkpoint
from medgan_core.checkpoint.export import export_nvidia_pickle
from medgan_core.checkpoint.nvidia_code import NvidiaSourceError, import_nvidia
from medgan_core.cli import main

CONFIGS = {
    "unconditional": ({}, {}),
    "conditional-clamped": (
        dict(c_dim=3, num_fp16_res=2, conv_clamp=256, mapping_kwargs={"num_layers": 3}),
        dict(c_dim=3, num_fp16_res=2, conv_clamp=256, architecture="skip"),
    ),
}


@pytest.fixture(params=sorted(CONFIGS))
def snapshot(request, tmp_path, make_generator, make_discriminator):
    """A medgan snapshot as the trainer writes it: G, D, G_ema, augment pipe, record with the training options."""
    g_kwargs, d_kwargs = CONFIGS[request.param]
    pipe = AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, brightness=1, contrast=1)
    pipe.p.fill_(0.3125)
    networks = dict(G=make_generator(1, **g_kwargs), D=make_discriminator(2, **d_kwargs),
                    G_ema=make_generator(3, **g_kwargs), augment_pipe=pipe)  # fmt: skip
    dataset = dict(path=str(tmp_path / "liver.zip"), use_labels=bool(g_kwargs), max_size=None, xflip=True,
                   random_seed=0, resolution=8)  # fmt: skip
    record = dict(training_state=dict(kimg=0.04), training_options=dict(training_set_kwargs=dataset))
    return save_checkpoint(tmp_path / "network-snapshot-000000.safetensors", networks, record), networks


def _inputs(G, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn([4, G.z_dim], generator=generator)
    c = torch.nn.functional.one_hot(torch.arange(4) % max(G.c_dim, 1), max(G.c_dim, 1)).float()[:, : G.c_dim]
    img = torch.randn([4, G.img_channels, G.img_resolution, G.img_resolution], generator=generator)
    return z, c, img


def test_nvidia_legacy_loader_reads_the_export_with_the_same_outputs(snapshot, tmp_path, nvidia_src):
    path, ours = snapshot
    out = export_nvidia_pickle(path, tmp_path / "exported.pkl", nvidia_src=nvidia_src)
    nvidia = import_nvidia(nvidia_src)
    with open(out, "rb") as f:
        data = nvidia.legacy.load_network_pkl(f)
    assert type(data["G_ema"]).__module__.startswith("torch_utils.persistence")  # NVIDIA's persistent classes
    assert type(data["G_ema"]).__name__ == "Generator" and type(data["augment_pipe"]).__name__ == "AugmentPipe"
    z, c, img = _inputs(ours["G_ema"])
    with torch.no_grad():
        for key in ("G_ema", "G"):
            for kwargs in (dict(noise_mode="const"), dict(truncation_psi=0.7, noise_mode="const")):
                expected = ours[key].eval()(z, c, **kwargs)
                assert (data[key](z, c, **kwargs) - expected).abs().max() <= 1e-5
        assert (data["D"](img, c) - ours["D"].eval()(img, c)).abs().max() <= 1e-5
    assert float(data["augment_pipe"].p) == 0.3125
    assert data["training_set_kwargs"]["class_name"] == "training.dataset.ImageFolderDataset"
    assert data["training_set_kwargs"]["path"] == str(tmp_path / "liver.zip")
    assert data["training_set_kwargs"]["xflip"] is True and data["training_set_kwargs"]["resolution"] == 8


def test_export_reads_back_through_our_allow_list_loader(snapshot, tmp_path, nvidia_src):
    path, ours = snapshot
    out = export_nvidia_pickle(path, tmp_path / "exported.pkl", nvidia_src=nvidia_src)
    loaded = load_network(out)
    assert loaded["source"] == "nvidia-pickle" and loaded["augment_p"] == 0.3125
    z, c, img = _inputs(ours["G_ema"], seed=1)
    with torch.no_grad():
        assert torch.equal(loaded["G_ema"](z, c, noise_mode="const"), ours["G_ema"].eval()(z, c, noise_mode="const"))
        assert torch.equal(loaded["D"](img, c), ours["D"].eval()(img, c))


def test_cli_export(snapshot, tmp_path, nvidia_src):
    path, _ = snapshot
    out = tmp_path / "cli.pkl"
    result = CliRunner().invoke(main, ["export", str(path), str(out), "--nvidia-src", str(nvidia_src)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "NVIDIA network pickle" in result.output


def test_failed_export_leaves_no_file_and_keeps_an_old_one(snapshot, tmp_path, nvidia_src, monkeypatch):
    path, _ = snapshot
    out = tmp_path / "exported.pkl"
    out.write_bytes(b"previous export")

    def broken_dump(obj, f):
        f.write(b"half a pickle")
        raise OSError("disk full")

    monkeypatch.setattr(export_module.pickle, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        export_nvidia_pickle(path, out, nvidia_src=nvidia_src)
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "exported.pkl"])


def test_without_a_checkout_the_error_says_how_to_give_one(tmp_path, monkeypatch, make_generator):
    monkeypatch.delenv("MEDGAN_NVIDIA_SRC", raising=False)
    path = save_checkpoint(tmp_path / "s.safetensors", {"G_ema": make_generator()}, {})
    with pytest.raises(NvidiaSourceError, match=r"--nvidia-src DIR or set MEDGAN_NVIDIA_SRC"):
        export_nvidia_pickle(path, tmp_path / "out.pkl")
    with pytest.raises(NvidiaSourceError, match=rf"{tmp_path}.*not a checkout"):
        export_nvidia_pickle(path, tmp_path / "out.pkl", nvidia_src=tmp_path)
    result = CliRunner().invoke(main, ["export", str(path), str(tmp_path / "out.pkl")])
    assert result.exit_code == 1 and "MEDGAN_NVIDIA_SRC" in result.output
    assert not (tmp_path / "out.pkl").exists()


def test_a_trained_snapshot_round_trips_through_nvidia(tmp_path, nvidia_src):
    """The trainer's own snapshot (a few iterations of `medgan train`) -> export -> NVIDIA's loader."""
    import numpy as np

    from medgan_core.utils.io import save_png

    rng = np.random.default_rng(0)
    for i in range(8):
        save_png(rng.integers(0, 256, (16, 16), dtype=np.uint8), tmp_path / "reals" / f"{i}.png")
    args = ["train", "--outdir", str(tmp_path / "runs"), "--data", str(tmp_path / "reals"), "--mirror=1",
            "--batch=8", "--cbase=1024", "--cmax=32", "--map-depth=2", "--kimg=0.016", "--tick=0.008", "--snap=1",
            "--metrics=none", "--workers=0", "--device=cpu", "--allocator=default"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    snapshot = sorted((tmp_path / "runs").glob("*/network-snapshot-*.safetensors"))[-1]
    out = export_nvidia_pickle(snapshot, tmp_path / "exported.pkl", nvidia_src=nvidia_src)
    with open(out, "rb") as f:
        data = import_nvidia(nvidia_src).legacy.load_network_pkl(f)
    ours = load_network(snapshot)
    z, c, img = _inputs(ours["G_ema"], seed=2)
    with torch.no_grad():
        assert (data["G_ema"](z, c, noise_mode="const") - ours["G_ema"](z, c, noise_mode="const")).abs().max() <= 1e-5
        assert (data["D"](img, c) - ours["D"](img, c)).abs().max() <= 1e-5
    assert data["training_set_kwargs"]["path"] == str(tmp_path / "reals") and data["training_set_kwargs"]["xflip"]
    assert float(data["augment_pipe"].p) == ours["augment_p"]
    nvidia = import_nvidia(nvidia_src)  # calc_metrics.py's look-up: NVIDIA's dataset built from the pickle's options
    dataset = nvidia.dnnlib.util.construct_class_by_name(**data["training_set_kwargs"])
    assert len(dataset) == 16 and dataset.resolution == 16 and dataset.num_channels == 1  # 8 images, x-flipped

"""Defaults equal NVIDIA's StyleGAN2 configuration (stylegan3 train.py --cfg=stylegan2, as listed in issue 4)
and the paper's options change exactly what they should."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from medgan_core.cli import main
from medgan_core.training.options import TrainOptions, build_config


def config_for(**overrides):
    return build_config(TrainOptions(outdir="o", data="d", **overrides), num_channels=1, resolution=256, label_dim=0)


def test_defaults_are_nvidias_stylegan2_configuration():
    c = config_for()
    assert c["G_kwargs"]["mapping_kwargs"]["num_layers"] == 8
    assert c["G_kwargs"]["channel_base"] == c["D_kwargs"]["channel_base"] == 32768
    assert c["G_kwargs"]["channel_max"] == c["D_kwargs"]["channel_max"] == 512
    assert c["G_kwargs"]["fused_modconv_default"] == "inference_only"
    assert c["G_kwargs"]["z_dim"] == c["G_kwargs"]["w_dim"] == 512
    assert c["D_kwargs"]["epilogue_kwargs"]["mbstd_group_size"] == 4
    for opt in ("G_opt_kwargs", "D_opt_kwargs"):
        assert c[opt] == dict(class_name="torch.optim.Adam", lr=0.002, betas=[0.0, 0.99], eps=1e-8)
    assert c["loss_kwargs"]["style_mixing_prob"] == 0.9
    assert c["loss_kwargs"]["pl_weight"] == 2 and c["loss_kwargs"]["pl_batch_shrink"] == 2
    assert c["loss_kwargs"]["pl_decay"] == 0.01 and c["loss_kwargs"]["class_name"] == "training.loss.StyleGAN2Loss"
    assert c["G_reg_interval"] == 4 and c["D_reg_interval"] == 16
    assert c["kimg_per_tick"] == 4 and c["image_snapshot_ticks"] == c["network_snapshot_ticks"] == 50
    assert c["metrics"] == ["fid50k_full"]
    assert c["ema_kimg"] == pytest.approx(32 * 10 / 32) and c["ema_rampup"] == 0.05
    assert c["G_kwargs"]["num_fp16_res"] == 4 and c["G_kwargs"]["conv_clamp"] == 256
    assert c["D_kwargs"]["num_fp16_res"] == 4 and c["D_kwargs"]["conv_clamp"] == 256
    bgc = dict(
        xflip=1,
        rotate90=1,
        xint=1,
        scale=1,
        rotate=1,
        aniso=1,
        xfrac=1,
        brightness=1,
        contrast=1,
        lumaflip=1,
        hue=1,
        saturation=1,
    )  # fmt: skip  (NVIDIA's train.py, --aug ada)
    assert c["augment_kwargs"] == dict(class_name="training.augment.AugmentPipe", **bgc)
    assert c["ada_target"] == 0.6 and c["ada_kimg"] == 500
    assert c["augment_p"] == 0.0 and c["ada_interval"] == 4


def test_paper_options_and_resume_adjustments():
    c = config_for(beta1=0.9, fp32=True, batch=64, resume="x.pkl", aug="fixed", p=0.3, metrics="none")
    assert c["G_opt_kwargs"]["betas"] == [0.9, 0.99] and c["D_opt_kwargs"]["betas"] == [0.9, 0.99]
    assert c["G_kwargs"]["num_fp16_res"] == 0 and c["G_kwargs"]["conv_clamp"] is None
    assert c["D_kwargs"]["num_fp16_res"] == 0 and c["D_kwargs"]["conv_clamp"] is None
    assert c["ema_kimg"] == pytest.approx(20) and c["ema_rampup"] is None and c["ada_kimg"] == 100
    assert c["augment_p"] == 0.3 and c["ada_target"] is None and c["metrics"] == []
    assert config_for(aug="noaug")["augment_kwargs"] is None
    assert config_for(ada_kimg=20)["ada_kimg"] == 20 and config_for(resume="x.pkl", ada_kimg=5)["ada_kimg"] == 5


def test_batch_checks():
    with pytest.raises(Exception, match="multiple of --gpus"):
        config_for(batch=30, gpus=4)
    with pytest.raises(Exception, match="minibatch-std"):
        config_for(batch=4, gpus=2)


def test_cli_help_documents_defaults_and_dry_run(discs32):
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--help"])
    assert result.exit_code == 0, result.output
    for text in (
        "--gamma",
        "--beta1",
        "--fp32",
        "--allocator",
        "--aug",
        "--resume",
        "--metrics",
        "--cbase",
        "32768",
        "fid50k_full",
        "bgc",
        "(0, 0.99)",
        "8 mapping layers",
    ):
        assert text in result.output, text
    result = runner.invoke(main, ["train", "--outdir", "o", "--data", str(discs32), "--dry-run", "--beta1", "0.9"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.output[result.output.index('{\n  "G_kwargs"') :])
    assert config["G_kwargs"]["img_resolution"] == 32 and config["G_kwargs"]["img_channels"] == 1
    assert config["G_opt_kwargs"]["betas"] == [0.9, 0.99]


def test_cli_reports_a_bad_dataset_clearly(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    result = CliRunner().invoke(
        main, ["train", "--outdir", str(tmp_path), "--data", str(tmp_path / "nowhere"), "--allocator", "default"]
    )
    assert result.exit_code != 0 and "nowhere" in result.output and "not a folder or a zip" in result.output


def test_cpu_setting_is_chosen_and_logged(monkeypatch):
    """Issue 27: on CPU, without --gpus, one process with a thread per core (measured faster than one gloo rank per
    core); --gpus as given otherwise; the log line says which and why."""
    from medgan_core.training import options

    monkeypatch.setattr(options, "cpu_cores", lambda: 2)
    c = config_for(device="cpu", batch=16, kimg=100)
    assert c["num_gpus"] == 1 and c["batch_gpu"] == 16 and c["cli_options"]["gpus"] is None
    line = options.cpu_setting(c, c["cli_options"])
    assert line.startswith("CPU setting: 1 process of") and "chosen by medgan for 2 core(s)" in line
    c = config_for(device="cpu", batch=16, kimg=100, gpus=2)
    assert c["num_gpus"] == 2 and c["batch_gpu"] == 8
    line = options.cpu_setting(c, c["cli_options"])
    assert line.startswith("CPU setting: 2 gloo ranks of") and "batch 8 each" in line and "as given by --gpus" in line
    assert options.cpu_threads(2) == 1 and options.cpu_threads(1) == 2
    assert options.cpu_setting(config_for(device="cuda"), {}) is None

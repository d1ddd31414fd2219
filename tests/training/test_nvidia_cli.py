"""NVIDIA's command lines and run folders (issue 13, items 2-4): NVIDIA's spellings (--mirror=1, --cond=true,
--map-depth, -n), stylegan2-ada-pytorch's --cfg presets, metric names checked before training, the README's
example command lines (sizes made small) through --dry-run and into training, and a run folder that NVIDIA's
tooling reads: training_options.json in its layout (read with dnnlib.EasyDict, its classes constructed from it),
log.txt, NVIDIA's stats keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from medgan_core.checkpoint import load_checkpoint
from medgan_core.cli import main
from medgan_core.training.dataset import ImageFolderDataset
from medgan_core.training.options import TrainOptions, build_config
from medgan_core.training.snapshot import snapshot_name
from tests.training.conftest import disc_images, write_folder

# NVlabs/stylegan3 README.md, "Training": the StyleGAN2 example (its StyleGAN3 examples name configurations medgan
# does not have); NVlabs/stylegan2-ada-pytorch README.md, "Training new networks" (dry run, then training).
README_LINES = {
    "stylegan3-readme-stylegan2": "--outdir={out} --cfg=stylegan2 --data={data} --gpus=8 --batch=32 --gamma=10 "
    "--mirror=1 --aug=noaug",
    "stylegan2-ada-readme": "--outdir={out} --data={data} --gpus=1",
}
SMALL = {"--gpus=8": "--gpus=1", "--batch=32": "--batch=8"}  # one CPU process, a small batch
SMALL_EXTRA = ["--batch=8", "--cbase=1024", "--cmax=32", "--map-depth=2", "--kimg=0.024", "--tick=0.008", "--snap=1",
               "--metrics=none", "--workers=0", "--allocator=default", "--device=cpu"]  # fmt: skip


def small(line: str, out: Path, data: Path) -> list[str]:
    args = [SMALL.get(arg, arg) for arg in line.format(out=out, data=data).split()]
    return args + [extra for extra in SMALL_EXTRA if extra.split("=")[0] not in {a.split("=")[0] for a in args}]


def dry_run(args: list[str]) -> dict:
    result = CliRunner().invoke(main, ["train", *args, "-n"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index('{\n  "G_kwargs"') :])


@pytest.fixture(scope="module")
def labelled16(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("labelled16")
    return write_folder(folder / "set", disc_images(16, 16, seed=3), labels=[i % 2 for i in range(16)])


# ---- spellings ------------------------------------------------------------------------------------------------------
def test_nvidia_spellings(tmp_path, labelled16):
    base = ["--outdir", str(tmp_path / "out"), "--data", str(labelled16), "--batch", "8"]
    c = dry_run([*base, "--mirror=1", "--cond=true", "--fp32=1", "--nobench=1", "--map-depth=3"])
    assert c["training_set_kwargs"]["xflip"] is True and c["training_set_kwargs"]["use_labels"] is True
    assert c["G_kwargs"]["c_dim"] == 2 and c["G_kwargs"]["num_fp16_res"] == 0 and c["G_kwargs"]["conv_clamp"] is None
    assert c["cudnn_benchmark"] is False and c["G_kwargs"]["mapping_kwargs"]["num_layers"] == 3
    c = dry_run([*base, "--mirror=0", "--cond=false", "--fp32=0", "--nobench=0", "--map", "5"])
    assert c["training_set_kwargs"]["xflip"] is False and c["training_set_kwargs"]["use_labels"] is False
    assert c["G_kwargs"]["num_fp16_res"] == 4 and c["cudnn_benchmark"] is True
    assert c["G_kwargs"]["mapping_kwargs"]["num_layers"] == 5  # our old spelling still works
    for spelling, expected in [(["--mirror"], True), (["--mirror", "yes"], True), (["--mirror", "0"], False)]:
        assert dry_run([*base, *spelling, "--cond"])["training_set_kwargs"]["xflip"] is expected, spelling
    assert not (tmp_path / "out").exists()  # a dry run makes nothing
    result = CliRunner().invoke(main, ["train", *base, "--mirror=maybe", "-n"])
    assert result.exit_code == 2 and "maybe" in result.output


# ---- --cfg presets: stylegan2-ada-pytorch's published cfg_specs ----------------------------------------------------
# (cfg, gpus, resolution): batch, batch_gpu, mbstd, cbase, lr, gamma, ema_kimg, ema_rampup, map (from its train.py;
# auto's values worked by hand from its formulas)
PRESETS = {
    ("paper256", 1, 256): (64, 8, 8, 16384, 0.0025, 1, 20, None, 8),
    ("paper256", 2, 256): (64, 8, 8, 16384, 0.0025, 1, 20, None, 8),
    ("paper512", 1, 512): (64, 8, 8, 32768, 0.0025, 0.5, 20, None, 8),
    ("paper1024", 4, 1024): (32, 4, 4, 32768, 0.002, 2, 10, None, 8),
    ("auto", 1, 256): (16, 16, 4, 16384, 0.0025, 0.8192, 5, 0.05, 2),
    ("auto", 8, 1024): (32, 4, 4, 32768, 0.002, 6.5536, 10, 0.05, 2),
    ("stylegan2", 1, 256): (32, 32, 4, 32768, 0.002, 10, 10, 0.05, 8),
}


@pytest.mark.parametrize("cfg, gpus, resolution", list(PRESETS))
def test_cfg_presets_have_the_published_hyperparameters(cfg, gpus, resolution):
    batch, batch_gpu, mbstd, cbase, lr, gamma, ema, ramp, depth = PRESETS[cfg, gpus, resolution]
    c = build_config(TrainOptions(outdir="o", data="d", cfg=cfg, gpus=gpus), 3, resolution, 0)
    assert (c["batch_size"], c["batch_gpu"]) == (batch, batch_gpu)
    assert c["D_kwargs"]["epilogue_kwargs"]["mbstd_group_size"] == mbstd
    assert c["G_kwargs"]["channel_base"] == c["D_kwargs"]["channel_base"] == cbase
    assert c["G_kwargs"]["channel_max"] == 512
    assert c["G_opt_kwargs"]["lr"] == c["D_opt_kwargs"]["lr"] == lr
    assert c["loss_kwargs"]["r1_gamma"] == pytest.approx(gamma)
    assert c["ema_kimg"] == pytest.approx(ema) and c["ema_rampup"] == ramp
    assert c["G_kwargs"]["mapping_kwargs"]["num_layers"] == depth
    assert c["G_kwargs"]["num_fp16_res"] == 4 and c["G_kwargs"]["conv_clamp"] == 256


def test_command_line_options_win_over_the_preset():
    opts = TrainOptions(outdir="o", data="d", cfg="paper256", gpus=2, batch=16, gamma=3.5, glr=0.001, map=4)
    c = build_config(opts, 1, 256, 0)
    assert c["batch_size"] == 16 and c["batch_gpu"] == 8  # --batch given: batch / gpus, as stylegan2-ada-pytorch
    assert c["loss_kwargs"]["r1_gamma"] == 3.5 and c["G_opt_kwargs"]["lr"] == 0.001
    assert c["D_opt_kwargs"]["lr"] == 0.0025 and c["G_kwargs"]["mapping_kwargs"]["num_layers"] == 4
    assert c["ema_kimg"] == 20 and c["cli_options"]["gamma"] == 3.5 and c["cli_options"]["batch_gpu"] is None


# ---- metric names --------------------------------------------------------------------------------------------------
def test_unknown_metric_is_refused_before_training(tmp_path, discs16):
    args = ["train", "--outdir", str(tmp_path / "out"), "--data", str(discs16), "--batch", "8", "--allocator",
            "default", "--metrics", "fid50k_full,fid1k,nonsense50k"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "unknown metric(s) nonsense50k;" in result.output  # only the unknown one, named
    for known in ("fid50k_full", "kid50k_full", "pr50k3_full", "is50k"):  # the registry's names are listed
        assert known in result.output, known
    assert not (tmp_path / "out").exists()
    assert CliRunner().invoke(main, [*args[:-1], "kid2k_full,fid50k,pr50k3_full,is50k", "-n"]).exit_code == 0


# ---- NVIDIA's README command lines ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def readme_runs(tmp_path_factory, discs16) -> dict[str, Path]:
    """Each README line (sizes made small) trained for 24 images; {name: run folder}, dataset opens counted."""
    runs = {}
    opened = []
    real_init = ImageFolderDataset.__init__

    def counting_init(self, *args, **kwargs):
        opened.append(args[0] if args else kwargs["path"])
        real_init(self, *args, **kwargs)

    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageFolderDataset, "__init__", counting_init)
        for name, line in README_LINES.items():
            out = tmp_path_factory.mktemp(name)
            opened.clear()
            result = CliRunner().invoke(main, ["train", *small(line, out, discs16)])
            assert result.exit_code == 0, result.output
            assert len(opened) == 1, opened  # the dataset is opened once in a single-process run
            (runs[name],) = [p for p in out.iterdir() if p.is_dir()]
    return runs


@pytest.mark.parametrize("name", list(README_LINES))
def test_readme_command_lines_dry_run(tmp_path, discs16, name):
    c = dry_run(small(README_LINES[name], tmp_path / "out", discs16))
    assert c["num_gpus"] == 1 and c["batch_size"] == 8 and c["training_set_kwargs"]["path"] == str(discs16)
    if name == "stylegan3-readme-stylegan2":
        assert c["loss_kwargs"]["r1_gamma"] == 10 and c["augment_kwargs"] is None
        assert c["training_set_kwargs"]["xflip"] is True
    assert not (tmp_path / "out").exists()


def test_stylegan3_configurations_are_refused_by_name(tmp_path, discs16):
    result = CliRunner().invoke(
        main, ["train", "--outdir", str(tmp_path), "--data", str(discs16), "--cfg=stylegan3-t"]
    )
    assert result.exit_code == 2 and "stylegan3-t" in result.output and "paper256" in result.output


@pytest.mark.parametrize("name", list(README_LINES))
def test_readme_command_lines_train_into_an_nvidia_style_run_folder(readme_runs, discs16, name):
    run = readme_runs[name]
    assert run.name.startswith("00000-discs16-gpus1-batch8-gamma")
    options = json.loads((run / "training_options.json").read_text())
    nvidia_keys = ["G_kwargs", "D_kwargs", "G_opt_kwargs", "D_opt_kwargs", "loss_kwargs", "augment_kwargs",
                   "training_set_kwargs", "data_loader_kwargs", "num_gpus", "batch_size", "batch_gpu", "total_kimg",
                   "kimg_per_tick", "image_snapshot_ticks", "network_snapshot_ticks", "random_seed",
                   "run_dir"]  # fmt: skip
    assert not [key for key in nvidia_keys if key not in options]
    assert options["G_kwargs"]["class_name"] == "training.networks_stylegan2.Generator"
    assert options["training_set_kwargs"]["class_name"] == "training.dataset.ImageFolderDataset"
    assert options["run_dir"] == str(run) and options["num_gpus"] == 1
    snapshots = sorted(p.name for p in run.glob("network-snapshot-*.safetensors"))
    # --snap=1: every tick from tick 0 (after the first batch), as NVIDIA's
    assert snapshots == [f"network-snapshot-000000.{n:03d}.safetensors" for n in (8, 16, 24)]
    record = load_checkpoint(run / snapshots[-1])["record"]
    assert record["training_options"]["training_set_kwargs"] == options["training_set_kwargs"]
    log = (run / "log.txt").read_text()
    assert "tick 0 " in log and "tick 2 " in log and "Exiting at kimg" in log
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    for entry in stats:
        total = entry["Timing/total_sec"]["mean"]
        assert entry["Timing/total_hours"]["mean"] == pytest.approx(total / 3600)
        assert entry["Timing/total_days"]["mean"] == pytest.approx(total / 86400)


_NVIDIA_READS = r"""
import json, sys
import torch
from medgan_core.checkpoint.nvidia_code import import_nvidia
dnnlib = import_nvidia(sys.argv[1]).dnnlib  # NVIDIA's checkout on sys.path (with setuptools' pkg_resources shim)
with open(sys.argv[2]) as f:
    c = dnnlib.EasyDict(json.load(f))
construct = dnnlib.util.construct_class_by_name
training_set = construct(**c.training_set_kwargs)
G = construct(**c.G_kwargs)
D = construct(**c.D_kwargs)
augment_pipe = construct(**c.augment_kwargs) if c.augment_kwargs is not None else None
G_opt = construct(params=G.parameters(), **c.G_opt_kwargs)
loss = construct(device=torch.device("cpu"), G=G, D=D, augment_pipe=augment_pipe, **c.loss_kwargs)
json.dump(dict(
    images=len(training_set), resolution=training_set.resolution, xflip=bool(c.training_set_kwargs["xflip"]),
    G={k: list(v.shape) for k, v in G.state_dict().items()}, D={k: list(v.shape) for k, v in D.state_dict().items()},
    augment=None if augment_pipe is None else {k: float(getattr(augment_pipe, k)) for k in ("xflip", "hue", "noise")},
    G_lr=G_opt.param_groups[0]["lr"], r1_gamma=loss.r1_gamma, pl_weight=loss.pl_weight,
), open(sys.argv[3], "w"))
"""


@pytest.mark.parametrize("name", list(README_LINES))
def test_nvidia_tooling_reads_training_options(readme_runs, nvidia_src, tmp_path, name):
    """NVIDIA's dnnlib reads the run's training_options.json and builds its own dataset, networks, augment pipe,
    optimiser and loss from it (a child process keeps NVIDIA's top-level packages out of this one)."""
    run = readme_runs[name]
    out = tmp_path / "nvidia.json"
    command = [sys.executable, "-c", _NVIDIA_READS, str(nvidia_src), str(run / "training_options.json"), str(out)]
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True)
    nvidia = json.loads(out.read_text())
    options = json.loads((run / "training_options.json").read_text())
    ours = load_checkpoint(sorted(run.glob("network-snapshot-*.safetensors"))[-1])["networks"]
    assert nvidia["images"] == len(ImageFolderDataset(options["training_set_kwargs"]["path"], xflip=nvidia["xflip"]))
    assert nvidia["resolution"] == 16
    assert nvidia["G"] == {k: list(v.shape) for k, v in ours["G"].state_dict().items()}
    assert nvidia["D"] == {k: list(v.shape) for k, v in ours["D"].state_dict().items()}
    assert nvidia["G_lr"] == options["G_opt_kwargs"]["lr"] and nvidia["r1_gamma"] == options["loss_kwargs"]["r1_gamma"]
    assert nvidia["pl_weight"] == 2
    if options["augment_kwargs"] is None:
        assert nvidia["augment"] is None and "augment_pipe" not in ours
    else:
        assert nvidia["augment"] == {k: float(getattr(ours["augment_pipe"], k)) for k in ("xflip", "hue", "noise")}


# ---- snapshot names ------------------------------------------------------------------------------------------------
def test_snapshot_names_are_nvidias_integer_kimg():
    assert snapshot_name(4008) == "network-snapshot-000004.safetensors"  # NVIDIA: cur_nimg // 1000
    assert snapshot_name(25_000_000) == "network-snapshot-025000.safetensors"
    # ticks under 1 kimg (NVIDIA allows none): the images past a whole kimg keep the names apart
    assert snapshot_name(40, fractional=True) == "network-snapshot-000000.040.safetensors"
    assert snapshot_name(2000, fractional=True) == "network-snapshot-000002.safetensors"

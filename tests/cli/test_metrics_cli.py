"""`medgan fid` against pytorch-fid on real MNI152 slices, and `medgan metrics` on NVIDIA's parity network."""

import json
from unittest import mock

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from medgan_core.cli import main
from medgan_core.metrics.inception import FID_WEIGHTS_URL, random_fid_inception_state_dict
from medgan_core.utils.io import save_png


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    monkeypatch.setenv("MEDGAN_CACHE", str(tmp_path / "medgan-cache"))
    monkeypatch.delenv("MEDGAN_INCEPTION", raising=False)


@pytest.fixture(scope="module")
def state_dict():
    return random_fid_inception_state_dict(seed=1)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, state_dict):
    path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
    torch.save(state_dict, path)
    return path


@pytest.fixture(scope="module")
def mni_folders(tmp_path_factory):
    """16 axial (197 x 233) and 16 coronal (197 x 189) 8-bit slices of nilearn's MNI152 T1 template."""
    from nilearn.datasets import load_mni152_template

    volume = np.asarray(load_mni152_template(resolution=1).get_fdata())
    volume = np.clip(volume / volume.max() * 255, 0, 255).astype(np.uint8)
    root = tmp_path_factory.mktemp("mni")
    for name, axis, start in (("axial", 2, 50), ("coronal", 1, 80)):
        for i in range(16):
            save_png(np.take(volume, start + i, axis=axis), root / name / f"slice{i:03d}.png")
    return root / "axial", root / "coronal"


@pytest.mark.slow  # pytorch-fid's scipy sqrtm of a 2048 x 2048 matrix dominates
def test_medgan_fid_equals_pytorch_fid(mni_folders, weights_file, state_dict):
    import pytorch_fid.fid_score as fid_score
    import pytorch_fid.inception as pfi

    real, generated = mni_folders
    result = CliRunner().invoke(
        main, ["fid", str(real), str(generated), "--inception", str(weights_file), "--batch", "16", "--json", "--kid"]
    )
    assert result.exit_code == 0, result.output
    ours = json.loads(result.stdout.strip().splitlines()[-1])
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *args, **kwargs: state_dict):
        theirs = fid_score.calculate_fid_given_paths([str(real), str(generated)], 16, "cpu", 2048, num_workers=0)
    assert ours["num_real"] == ours["num_gen"] == 16
    assert ours["fid"] == pytest.approx(theirs, abs=1e-4)
    assert ours["fid"] > 1e-3 and np.isfinite(ours["kid"])  # different anatomy: a clearly non-zero distance


def test_medgan_fid_without_weights_says_how_to_get_them(mni_folders):
    real, generated = mni_folders
    result = CliRunner().invoke(main, ["fid", str(real), str(generated)])
    assert result.exit_code != 0
    assert "--inception" in result.output and "MEDGAN_INCEPTION" in result.output and FID_WEIGHTS_URL in result.output


def test_medgan_fid_rejects_a_folder_without_images(tmp_path, weights_file, mni_folders):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["fid", str(mni_folders[0]), str(tmp_path / "empty"), "--inception",
                                       str(weights_file)])  # fmt: skip
    assert result.exit_code != 0 and "empty: no images found" in result.output


def test_medgan_metrics_on_the_parity_network(parity_dir, tmp_path, weights_file):
    rng = np.random.default_rng(0)
    for i in range(6):
        save_png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), tmp_path / "reals" / f"{i}.png")
    args = ["metrics", "--network", str(parity_dir / "network-snapshot.pkl"), "--data", str(tmp_path / "reals"),
            "--metrics", "fid1k_full", "--num-gen", "6", "--inception", str(weights_file), "--json",
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["metric"] == "fid1k_full" and line["num_gen"] == 6
    assert np.isfinite(line["results"]["fid1k_full"]) and line["results"]["fid1k_full"] > 0
    assert line["detector"].startswith("pytorch-fid-")


@pytest.mark.parametrize("batch", ["1", "3"])
def test_medgan_fid_checks_the_whole_set_whatever_the_batch(tmp_path, weights_file, batch):
    """One odd-sized image among six: refused up front, named, even when no batch holds it beside another."""
    rng = np.random.default_rng(0)
    for folder in ("real", "fake"):
        for i in range(6):
            save_png(rng.integers(0, 256, (16, 16), dtype=np.uint8), tmp_path / folder / f"{i}.png")
    save_png(rng.integers(0, 256, (8, 8), dtype=np.uint8), tmp_path / "fake" / "6_odd.png")
    args = ["fid", str(tmp_path / "real"), str(tmp_path / "fake"), "--batch", batch, "--inception", str(weights_file)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "6_odd.png: 1x8x8" in result.output and "differs from the majority's 1x16x16" in result.output


@pytest.fixture
def run_folder(tmp_path):
    """A run folder as NVIDIA's and our trainer leave it: a snapshot, training_options.json naming the dataset."""
    from medgan_core.checkpoint import save_checkpoint
    from medgan_core.networks import Generator

    rng = np.random.default_rng(1)
    for i in range(6):
        save_png(rng.integers(0, 256, (16, 16), dtype=np.uint8), tmp_path / "reals" / f"{i}.png")
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=1, mapping_kwargs={"num_layers": 2},
                  channel_base=64, channel_max=16, num_fp16_res=0)  # fmt: skip
    run = tmp_path / "00000-reals"
    snapshot = save_checkpoint(run / "network-snapshot-000000.safetensors", {"G_ema": G}, {"kimg": 0})
    options = {"training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset",
                                       "path": str(tmp_path / "reals"), "xflip": False}}  # fmt: skip
    (run / "training_options.json").write_text(json.dumps(options))
    return run, snapshot, tmp_path / "reals"


def _metrics(*args):
    return CliRunner().invoke(main, ["metrics", *map(str, args)])


@pytest.mark.slow  # Inception-v3 on the CPU, twice
def test_metrics_looks_up_the_dataset_and_appends_nvidia_lines(run_folder, weights_file, tmp_path):
    run, snapshot, reals = run_folder
    common = ["--metrics", "fid1k_full", "--num-gen", "6", "--inception", weights_file, "--cache-dir", tmp_path / "c"]
    looked_up = _metrics("--network", snapshot, *common, "--json")
    assert looked_up.exit_code == 0, looked_up.output
    line = json.loads(looked_up.stdout.strip().splitlines()[-1])
    explicit = _metrics("--network", snapshot, "--data", reals, *common, "--json")
    assert explicit.exit_code == 0, explicit.output
    assert json.loads(explicit.stdout.strip().splitlines()[-1])["results"] == line["results"]
    written = [json.loads(text) for text in (run / "metric-fid1k_full.jsonl").read_text().splitlines()]
    assert len(written) == 2 and written[0]["results"] == line["results"]
    assert list(written[0])[:7] == ["results", "metric", "total_time", "total_time_str", "num_gpus", "snapshot_pkl",
                                    "timestamp"]  # fmt: skip
    assert written[0]["snapshot_pkl"] == "network-snapshot-000000.safetensors" and written[0]["num_gpus"] == 1


@pytest.mark.slow  # Inception-v3 on the CPU, twice
def test_metrics_on_two_processes_equals_one(run_folder, weights_file, tmp_path):
    run, snapshot, reals = run_folder
    common = ["--network", snapshot, "--metrics", "fid1k_full", "--num-gen", "6", "--inception", weights_file,
              "--json", "--batch", "2"]  # fmt: skip
    one = _metrics(*common, "--cache-dir", tmp_path / "c1")
    two = _metrics(*common, "--gpus", "2", "--cache-dir", tmp_path / "c2")
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    one_line, two_line = (json.loads(r.stdout.strip().splitlines()[-1]) for r in (one, two))
    assert two_line["num_gpus"] == 2
    assert two_line["results"]["fid1k_full"] == pytest.approx(one_line["results"]["fid1k_full"], rel=1e-6)


def test_metrics_errors_are_clear(run_folder, tmp_path, monkeypatch):
    run, snapshot, reals = run_folder
    (run / "training_options.json").unlink()
    monkeypatch.setenv("MEDGAN_INCEPTION", str(snapshot))  # any file passes the weights check; errors come first
    no_data = _metrics("--network", snapshot, "--metrics", "fid1k_full")
    assert no_data.exit_code == 2 and "pass --data" in no_data.output
    unknown = _metrics("--network", snapshot, "--data", reals, "--metrics", "fid1k_full,pr50k,ppl2_wend")
    assert unknown.exit_code == 2 and "pr50k, ppl2_wend" in unknown.output and "pr50k3_full" in unknown.output
    no_vgg = _metrics("--network", snapshot, "--data", reals, "--metrics", "pr50k3_full")
    assert no_vgg.exit_code == 1 and "--vgg16" in no_vgg.output and "MEDGAN_VGG16" in no_vgg.output
    url = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/brecahad.pkl"
    offline = _metrics("--network", url, "--data", reals, "--metrics", "fid1k_full")
    assert offline.exit_code == 1 and url in offline.output and "--network PATH" in offline.output
    bad_mirror = _metrics("--network", snapshot, "--data", reals, "--mirror", "maybe")
    assert bad_mirror.exit_code == 2 and "--mirror" in bad_mirror.output


def test_metrics_into_a_run_folder_a_trainer_writes_are_refused_before_computing(run_folder, weights_file, tmp_path):
    import subprocess
    import sys

    run, snapshot, _ = run_folder
    holder = subprocess.Popen(  # a trainer's hold on its folder (utils/runlock.py)
        [sys.executable, "-c", "import sys, time\nfrom medgan_core.utils.runlock import run_lock\n"
         "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)", str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        result = _metrics("--network", snapshot, "--metrics", "fid1k_full", "--num-gen", "6", "--inception",
                          weights_file, "--cache-dir", tmp_path / "c")  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 75, result.output
    assert f"{run} is being written by medgan train on host" in result.output and f"pid {holder.pid}," in result.output
    assert "Run this again once it ended" in result.output and "Traceback" not in result.output
    assert not list(run.glob("metric-*.jsonl")) and not (tmp_path / "c").exists()  # nothing computed or written

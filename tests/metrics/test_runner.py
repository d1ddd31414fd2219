"""The trainer hook: metric registry, calc_metric (single and two ranks), real-statistics cache, report_metric."""

import json
import os

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from medgan_core.metrics import runner
from medgan_core.utils.io import save_png


class TinyGenerator(torch.nn.Module):
    """G(z, c) -> [N, 1, 16, 16] in about [-1, 1], a fixed random linear map of z (NVIDIA's call signature)."""

    z_dim, c_dim = 8, 0

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(8, 256, generator=torch.Generator().manual_seed(0)) * 0.4)

    def forward(self, z, c, noise_mode="random"):
        assert noise_mode == "const"
        return torch.tanh(z @ self.weight).reshape(-1, 1, 16, 16)


class PixelDetector:
    """A cheap stand-in for Inception: 4x4 average-pooled pixels as 16-d features."""

    feature_dim = 16
    tag = "pixels-4x4"

    def __call__(self, images):
        assert images.dtype == torch.uint8
        return torch.nn.functional.avg_pool2d(images.float(), 4).flatten(1)


def _features(images_uint8: np.ndarray) -> np.ndarray:  # [N, 16, 16] -> [N, 16], independent of the package
    return images_uint8.astype(np.float64).reshape(-1, 4, 4, 4, 4).mean(axis=(2, 4)).reshape(-1, 16)


@pytest.fixture
def real_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "reals"
    yy, xx = np.mgrid[0:16, 0:16]
    for i in range(30):
        image = 100 + 80 * np.sin(xx / rng.uniform(1, 4) + yy / rng.uniform(1, 4)) + rng.normal(0, 10, (16, 16))
        save_png(np.clip(image, 0, 255).astype(np.uint8), folder / f"img{i:02d}.png")
    return folder


def _expected_fid(real_folder, num_gen):
    reals = np.stack([np.asarray(Image.open(p)) for p in sorted(real_folder.glob("*.png"))])
    G = TinyGenerator()
    z = np.stack([np.random.RandomState(i).randn(8) for i in range(num_gen)]).astype(np.float32)
    with torch.no_grad():
        fakes = (G(torch.from_numpy(z), None, "const") * 127.5 + 128).clamp(0, 255).to(torch.uint8)[:, 0].numpy()
    a, b = _features(reals), _features(fakes)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * root))


def test_calc_metric_fid_matches_direct_computation_and_caches_reals(real_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    result = runner.calc_metric("fid1k_full", TinyGenerator(), real_folder, "cpu", cache_dir=cache,
                                inception=PixelDetector(), batch_size=7, num_gen=25)  # fmt: skip
    assert result["metric"] == "fid1k_full" and result["num_gen"] == 25 and result["total_time"] >= 0
    assert result["results"]["fid1k_full"] == pytest.approx(_expected_fid(real_folder, 25), rel=1e-8)
    assert len(list((cache / "metrics").glob("real-stats-*.npz"))) == 1

    def no_recompute(*args, **kwargs):
        raise AssertionError("real statistics should come from the cache")

    monkeypatch.setattr(runner, "compute_source_stats", no_recompute)
    again = runner.calc_metric("fid1k_full", TinyGenerator(), real_folder, "cpu", cache_dir=cache,
                               inception=PixelDetector(), batch_size=5, num_gen=25)  # fmt: skip
    assert again["results"]["fid1k_full"] == pytest.approx(result["results"]["fid1k_full"], rel=1e-10)
    save_png(np.zeros((16, 16), np.uint8), real_folder / "img00.png")  # changed content: a new cache key
    with pytest.raises(AssertionError, match="from the cache"):
        runner.calc_metric("fid1k_full", TinyGenerator(), real_folder, "cpu", cache_dir=cache,
                           inception=PixelDetector(), num_gen=25)  # fmt: skip


def test_kid_metric_runs_on_captured_features(real_folder, tmp_path):
    from medgan_core.metrics.kid import kernel_inception_distance

    result = runner.calc_metric("kid1k", TinyGenerator(), real_folder, "cpu", cache_dir=tmp_path,
                                inception=PixelDetector(), num_gen=20)  # fmt: skip
    reals = np.stack([np.asarray(Image.open(p)) for p in sorted(real_folder.glob("*.png"))])
    G = TinyGenerator()
    z = torch.from_numpy(np.stack([np.random.RandomState(i).randn(8) for i in range(20)]).astype(np.float32))
    with torch.no_grad():
        fakes = (G(z, None, "const") * 127.5 + 128).clamp(0, 255).to(torch.uint8)[:, 0].numpy()
    expected = kernel_inception_distance(_features(reals), _features(fakes))
    assert result["results"]["kid1k"] == pytest.approx(expected, rel=1e-6)


def _two_rank_worker(rank, folder, cache, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        result = runner.calc_metric("fid1k_full", TinyGenerator(), folder, "cpu", rank=rank, world_size=2,
                                    cache_dir=cache, inception=PixelDetector(), batch_size=4, num_gen=25)  # fmt: skip
        if rank == 0:
            with open(out, "w") as f:
                json.dump(result, f)
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_give_the_single_process_value(real_folder, tmp_path, monkeypatch):
    import socket
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))  # so spawned ranks can import this file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "rank0.json"
    torch.multiprocessing.spawn(_two_rank_worker, args=(real_folder, tmp_path / "c2", port, out), nprocs=2)
    value = json.loads(out.read_text())["results"]["fid1k_full"]
    assert value == pytest.approx(_expected_fid(real_folder, 25), rel=1e-8)


def test_report_metric_appends_and_tracks_the_best(tmp_path):
    flags = []
    for kimg, value in enumerate([5.0, 3.0, 4.0, float("nan"), 2.5]):
        result = {"results": {"fid50k_full": value}, "metric": "fid50k_full", "total_time": 1.0,
                  "total_time_str": "1s", "num_gpus": 1}  # fmt: skip
        flags.append(runner.report_metric(result, tmp_path, snapshot=tmp_path / f"network-snapshot-{kimg:06d}.pkl"))
    assert flags == [True, True, False, False, True]
    lines = [json.loads(line) for line in (tmp_path / "metric-fid50k_full.jsonl").read_text().splitlines()]
    assert [line["snapshot_pkl"] for line in lines][-1] == "network-snapshot-000004.pkl"
    assert list(lines[0])[:7] == ["results", "metric", "total_time", "total_time_str", "num_gpus", "snapshot_pkl",
                                  "timestamp"]  # NVIDIA's metric_main.report_metric line  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["metric-fid50k_full.jsonl"]  # no temporary leftovers


def test_is_available(monkeypatch, tmp_path, weights_file):
    assert runner.is_available("fid123") == (False, "unknown metric 'fid123'")
    ok, reason = runner.is_available("fid50k_full")
    assert not ok and "MEDGAN_INCEPTION" in reason  # offline, nothing cached (MEDGAN_CACHE points to tmp)
    assert runner.is_available("kid2k_full", inception=weights_file) == (True, "")
    monkeypatch.setitem(runner.METRICS, "mem1k", "medgan_core.not_written_yet:mem1k")
    ok, reason = runner.is_available("mem1k")
    assert not ok and "not installed" in reason
    assert set(runner.METRICS) >= {"fid50k_full", "kid50k_full", "mem1k", "msssim1k"}


def test_unknown_metric_raises():
    with pytest.raises(KeyError, match="unknown metric"):
        runner.resolve_metric("is50k_full")


def test_metric_names_are_checked_at_the_door():
    good = ["fid50k_full", "kid50k_full", "pr50k3_full", "is50k", "pr50k3", "fid2k_full", "pr2k3", "is1k", "mem1k"]
    assert runner.check_metric_names(good) == good
    assert runner.check_metric_names("fid50k_full, pr50k3_full") == ["fid50k_full", "pr50k3_full"]
    assert runner.check_metric_names("none") == []
    with pytest.raises(ValueError) as info:
        runner.check_metric_names(["fid50k_full", "pr50k", "is50k_full", "fid0k", "ppl2_wend"])
    message = str(info.value)
    assert "pr50k, is50k_full, fid0k, ppl2_wend" in message and "pr50k3_full" in message and "is50k" in message
    assert {"pr50k3_full", "is50k", "fid50k_full"} <= set(runner.list_metrics())
    assert runner.higher_is_better("pr50k3_full") and runner.higher_is_better("is50k")
    assert not runner.higher_is_better("fid50k_full")


def test_precision_recall_through_the_runner(real_folder, tmp_path):
    """pr<N>k3_full on G's images = precision_recall on the detector's features of the same images."""
    from medgan_core.data.images import ImageSource
    from medgan_core.metrics.features import generated_images
    from medgan_core.metrics.precision_recall import precision_recall

    result = runner.calc_metric("pr1k3_full", TinyGenerator(), real_folder, "cpu", cache_dir=tmp_path,
                                vgg16=PixelDetector(), num_gen=40, batch_size=16)  # fmt: skip
    reals = PixelDetector()(ImageSource(real_folder).batch(range(30)))
    fakes = PixelDetector()(generated_images(TinyGenerator(), range(40), "cpu"))
    precision, recall = precision_recall(reals.numpy(), fakes.numpy())
    assert result["results"] == {"pr1k3_full_precision": precision, "pr1k3_full_recall": recall}
    assert result["detector"] == "pixels-4x4" and 0 < precision < 1


def test_inception_score_through_the_runner(weights_file, tmp_path):
    from medgan_core.metrics.detector import InceptionProbabilities, load_inception
    from medgan_core.metrics.features import generated_images
    from medgan_core.metrics.inception_score import inception_score

    result = runner.calc_metric("is1k", TinyGenerator(), tmp_path, "cpu", inception=weights_file, num_gen=20)
    probs = InceptionProbabilities(load_inception(weights_file))(generated_images(TinyGenerator(), range(20), "cpu"))
    mean, std = inception_score(probs.numpy())
    assert result["results"]["is1k_mean"] == pytest.approx(mean, rel=1e-6)
    assert result["results"]["is1k_std"] == pytest.approx(std, rel=1e-5, abs=1e-7)


def test_mirrored_reals_for_the_legacy_metrics(real_folder):
    from medgan_core.data.images import ImageSource

    source = ImageSource(real_folder)
    mirrored = runner.MirroredSource(source)
    assert len(mirrored) == 60 and mirrored.content_hash() != source.content_hash()
    both = mirrored.batch([3, 33])
    assert torch.equal(both[0], source.batch([3])[0]) and torch.equal(both[1], source.batch([3])[0].flip(-1))
    opts = runner.MetricOptions(G=None, data=real_folder, device=torch.device("cpu"), mirror=True)
    assert opts.real_source(honour_mirror=False) is opts.source and len(opts.real_source(honour_mirror=True)) == 60


def test_format_time_and_metric_line_match_nvidia(nvidia_src, tmp_path, monkeypatch):
    import importlib

    from medgan_core.checkpoint.nvidia_code import import_nvidia

    dnnlib = import_nvidia(nvidia_src).dnnlib
    for seconds in (0, 5.4, 59, 60, 125, 3599, 3600, 3723, 86399, 86400, 200000):
        assert runner.format_time(seconds) == dnnlib.util.format_time(seconds)
    metric_main = importlib.import_module("metrics.metric_main")
    result = {"results": {"fid50k_full": 3.5}, "metric": "fid50k_full", "total_time": 12.5, "total_time_str": "12s",
              "num_gpus": 1}  # fmt: skip
    monkeypatch.setattr(runner.time, "time", lambda: 1234.5)
    monkeypatch.setattr(metric_main.time, "time", lambda: 1234.5)
    snapshot = tmp_path / "network-snapshot-000040.pkl"
    metric_main.report_metric(dnnlib.EasyDict(result), run_dir=str(tmp_path), snapshot_pkl=str(snapshot))
    theirs = (tmp_path / "metric-fid50k_full.jsonl").read_text()
    assert runner.metric_line(result, tmp_path, snapshot) + "\n" == theirs

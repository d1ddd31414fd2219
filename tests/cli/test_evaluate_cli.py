import json

import numpy as np
from click.testing import CliRunner

from medgan_core.cli import main
from medgan_core.utils.io import save_png


def _write(folder, images):
    folder.mkdir()
    for i, image in enumerate(images):
        save_png(image, folder / f"img{i:03d}.png")
    return str(folder)


def _slices(count, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    out = []
    for _ in range(count):
        cy, cx, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(4, 10)
        img = 40 + 150 * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r) + rng.normal(0, 5, (32, 32))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def test_memorization_cli_flags_copies(tmp_path):
    train = _slices(60, 0)
    train_dir = _write(tmp_path / "train", train)
    hold_dir = _write(tmp_path / "hold", _slices(60, 1))
    gen_dir = _write(tmp_path / "gen", np.clip(train[:20].astype(int) + 12, 0, 255).astype(np.uint8))
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main,
        [
            "memorization",
            "--generated",
            gen_dir,
            "--train",
            train_dir,
            "--holdout",
            hold_dir,
            "--size",
            "32",
            "--fpr",
            "0.05",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["flagged_fraction"] == 1.0
    for name in ("memorization.json", "nearest.csv", "distances.png", "closest_pairs.png"):
        assert (out / name).is_file()
    assert "img000.png,img000.png" in (out / "nearest.csv").read_text()


def test_diversity_cli_json(tmp_path):
    gen_dir = _write(tmp_path / "gen", np.repeat(_slices(1, 2), 5, axis=0))
    real_dir = _write(tmp_path / "real", _slices(8, 3))
    result = CliRunner().invoke(
        main, ["diversity", "--generated", gen_dir, "--real", real_dir, "--pairs", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert abs(payload["generated_mean"] - 1.0) < 1e-5 and payload["real_mean"] < 0.9


def test_cli_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    real_dir = _write(tmp_path / "real", _slices(4, 3))
    result = CliRunner().invoke(main, ["diversity", "--generated", str(empty), "--real", real_dir])
    assert result.exit_code != 0 and "no images found" in result.output and "empty" in result.output


def test_memorization_cli_uses_inception_when_at_hand(tmp_path, monkeypatch):
    import torch

    from medgan_core.metrics.inception import random_fid_inception_state_dict

    monkeypatch.delenv("MEDGAN_INCEPTION", raising=False)
    monkeypatch.setenv("MEDGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    train = _slices(10, 0)
    args = [
        "memorization",
        "--generated",
        _write(tmp_path / "gen", train[:4]),
        "--train",
        _write(tmp_path / "train", train),
        "--holdout",
        _write(tmp_path / "hold", _slices(4, 1)),
        "--size",
        "32",
        "--fpr",
        "0.25",
        "--json",
    ]
    without = CliRunner().invoke(main, args)
    assert without.exit_code == 0, without.output
    assert json.loads(without.output.strip().splitlines()[-1])["inception"]["available"] is False

    weights = tmp_path / "inception.pth"
    torch.save(random_fid_inception_state_dict(seed=0), weights)
    with_weights = CliRunner().invoke(main, [*args, "--inception", str(weights)])
    assert with_weights.exit_code == 0, with_weights.output
    inception = json.loads(with_weights.output.strip().splitlines()[-1])["inception"]
    assert inception["available"] is True and inception["num_generated"] == 4
    assert inception["flagged_fraction"] == 1.0  # exact copies are nearest in any feature space

    missing = CliRunner().invoke(main, [*args, "--inception", str(tmp_path / "nope.pth")])
    assert missing.exit_code != 0 and "MEDGAN_INCEPTION" in missing.output

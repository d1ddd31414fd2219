"""Chapter 3's words follow its numbers: collapse verdicts from the final grids, the ordering against the paper's,
the loss finding, and the settings that differ from the paper, each tested both ways on small fixtures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from medgan_core.book import ablation
from medgan_core.book.paper import EXPERIMENTS
from medgan_core.book.runs import RunDirectory
from medgan_core.utils.io import save_png

SIDE = 16


def blobs(count: int, seed: int) -> np.ndarray:
    """Varied images: a bright disc at a random place and size on a dark background, uint8 [N, 16, 16, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    images = []
    for _ in range(count):
        cy, cx, r = rng.uniform(3, 13), rng.uniform(3, 13), rng.uniform(2, 6)
        images.append(np.where((y - cy) ** 2 + (x - cx) ** 2 <= r * r, 220, 20) + rng.integers(0, 10, (SIDE, SIDE)))
    return np.asarray(images, dtype=np.uint8)[..., None]


def write_run(folder, tiles: np.ndarray, kimg=10.0, resume=None, resolution=SIDE) -> RunDirectory:
    folder.mkdir(parents=True)
    options = {"cli_options": {"data": "/x/mni-brain-16.zip", "kimg": kimg, "metrics": "frd64", "cbase": 1024,
                               "cmax": 64, "map": 2, "beta1": 0.9, "fp32": True, "batch": 8, "gamma": 0.05,
                               "resume": resume}, "G_kwargs": {"img_resolution": resolution}}  # fmt: skip
    (folder / "training_options.json").write_text(json.dumps(options))
    grid = tiles[:32, :, :, 0].reshape(4, 8, SIDE, SIDE).swapaxes(1, 2).reshape(4 * SIDE, 8 * SIDE)
    save_png(grid, folder / "fakes000010.png")
    return RunDirectory.open(folder)


def test_grid_tiles_cut_the_final_grid_back_into_its_images(tmp_path):
    tiles = blobs(32, 0)
    run = write_run(tmp_path / "exp1-seed0", tiles)
    assert np.array_equal(ablation.grid_tiles(run), tiles)


def test_collapse_verdict_follows_the_grids_both_ways(tmp_path):
    reals = blobs(64, 1)
    varied = write_run(tmp_path / "exp1-seed0", blobs(32, 2))
    same = write_run(tmp_path / "exp3-seed0", np.repeat(blobs(1, 3), 32, axis=0))
    table = ablation.final_collapse({"exp1-seed0": varied, "exp3-seed0": same}, reals)
    assert table.loc["exp3-seed0", "state"] == "collapse"
    assert table.loc["exp1-seed0", "state"] != "collapse"
    boxes = ablation.collapse_boxes(table, "the tables", show=False)
    assert len(boxes) == 2
    assert any("Mode collapse" in box and "exp3-seed0" in box for box in boxes)
    assert not any("Mode collapse" in box and "exp1-seed0" in box for box in boxes)


def scores_for(means: dict[int, float]) -> pd.DataFrame:
    rows = [dict(run=f"exp{k}-seed{s}", experiment=EXPERIMENTS[k]["name"], FRD=m + 0.01 * s)
            for k, m in means.items() for s in range(3)]  # fmt: skip
    return pd.DataFrame(rows).set_index("run")


def test_ordering_words_follow_the_numbers_both_ways():
    agree = ablation.ordering_comparison(scores_for({1: 10.0, 2: 8.0, 3: 8.5, 4: 6.0}))
    assert "as the paper does" in agree and "hurts" not in agree
    no_frd = scores_for({1: 10.0, 2: 8.0}).assign(FRD=float("nan"))
    assert "no comparison here" in ablation.ordering_comparison(no_frd)
    assert "our runs recorded no FRD" in ablation.ordering_comparison(no_frd)
    disagree = ablation.ordering_comparison(scores_for({1: 10.0, 2: 12.0, 3: 8.5, 4: 11.0}))
    assert "in 1 of the 3 comparisons" in disagree
    assert disagree.count("(hurts") == 2 and "0 of our 3 differences are significant" in disagree


def test_loss_words_follow_the_numbers_both_ways():
    def curves(augmented_mean, augmented_wobble):
        rows = []
        for k in EXPERIMENTS:
            aug = EXPERIMENTS[k]["augment"]
            for s in range(3):
                for t in range(6):
                    wobble = (augmented_wobble if aug else 0.5) * (-1) ** t
                    loss = (augmented_mean if aug else 2.0) + 0.01 * s + wobble
                    rows.append(dict(kimg=t, G_loss=loss, experiment=EXPERIMENTS[k]["name"], run=f"exp{k}-seed{s}"))
        return pd.DataFrame(rows)

    assert "Our runs show the same effect" in ablation.loss_comparison(curves(1.0, 0.1))
    assert "Our runs do not show that effect" in ablation.loss_comparison(curves(2.5, 0.9))


def test_differences_from_paper_come_from_the_run_options(tmp_path):
    runs = {name: write_run(tmp_path / name, blobs(32, i), resume="/w/source-networks.safetensors" if k == 2 else None)
            for i, (name, k) in enumerate([("exp1-seed0", 1), ("exp2-seed0", 2)])}  # fmt: skip
    table = ablation.differences_from_paper(runs)
    assert table.loc["resolution", "ours"] == str(SIDE) and table.loc["resolution", "paper"] == "512"
    assert table.loc["length (kimg)", "ours"] == "10"
    assert table.loc["transfer source", "ours"] == "source-networks.safetensors"
    assert "Adam beta1" not in table.index and "precision" not in table.index  # the same as the paper's
    assert ablation.length_sentence(runs) == "Our runs: 10 kimg each at 16 x 16 pixels, 1 per experiment."

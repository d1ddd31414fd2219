import numpy as np
import pytest
import torch

from medgan_core.evaluation.memorization import (
    closest_pairs_grid,
    find_memorized,
    ncc_embedding,
    nearest_neighbours,
    plot_distances,
)


def _brute_force_ncc(a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
    """NCC of every pair by an explicit loop with numpy's corrcoef, after block-mean downsampling."""

    def down(img):
        h, w, c = img.shape
        return img.astype(np.float64).reshape(size, h // size, size, w // size, c).mean(axis=(1, 3)).ravel()

    da, db = [down(x) for x in a], [down(x) for x in b]
    out = np.empty((len(a), len(b)))
    for i, x in enumerate(da):
        for j, y in enumerate(db):
            out[i, j] = np.corrcoef(x, y)[0, 1]
    return out


def test_nearest_neighbours_match_brute_force(mni_slices):
    queries, refs = mni_slices[::7][:12], mni_slices[1::3][:30]
    ncc = _brute_force_ncc(queries, refs, size=32)
    sims, idx = nearest_neighbours(ncc_embedding(queries, 32), ncc_embedding(refs, 32), k=3, chunk_size=5)
    expected_idx = np.argsort(-ncc, axis=1)[:, :3]
    np.testing.assert_array_equal(idx.numpy(), expected_idx)
    np.testing.assert_allclose(sims.numpy(), np.take_along_axis(ncc, expected_idx, axis=1), atol=1e-5)


def test_leave_one_out_skips_self(mni_slices):
    vectors = ncc_embedding(mni_slices[:20], 32)
    _, idx = nearest_neighbours(vectors, vectors, k=1, exclude_self=True, chunk_size=7)
    assert (idx[:, 0].numpy() != np.arange(20)).all()


def test_ncc_ignores_intensity_shift_and_scale(mni_slices):
    image = mni_slices[40:41].astype(np.float32)
    shifted = image * 0.7 + 25  # a global contrast and brightness change
    a, b = ncc_embedding(image, 64), ncc_embedding(shifted, 64)
    assert float(a @ b.T) == pytest.approx(1.0, abs=1e-5)


def test_copier_is_flagged_holdout_at_fpr_and_random_generator_not(phantom_family):
    train = phantom_family(300, seed=1)
    calibration = phantom_family(300, seed=2)
    fresh_reals = phantom_family(400, seed=3)
    rng = np.random.default_rng(4)
    picks = rng.integers(0, len(train), 200)
    copies = train[picks].astype(np.float32) * rng.uniform(0.8, 1.1, (200, 1, 1, 1)) + rng.uniform(
        -20, 20, (200, 1, 1, 1)
    )
    copies = np.clip(copies + rng.normal(0, 3, copies.shape), 0, 255).astype(np.uint8)

    fpr = 0.05
    copier = find_memorized(copies, train, calibration, fpr=fpr, size=32)
    assert copier.flagged_fraction >= 0.97
    assert (copier.generated_neighbours[:, 0] == picks).mean() >= 0.97  # and it finds the right source

    fresh = find_memorized(fresh_reals, train, calibration, fpr=fpr, size=32)
    # 400 fresh draws at a 5% false-positive rate: binomial SD ~1.1 points
    assert 0.015 <= fresh.flagged_fraction <= 0.095

    from medgan_core.networks import Generator

    torch.manual_seed(0)
    G = Generator(
        z_dim=32,
        c_dim=0,
        w_dim=32,
        img_resolution=32,
        img_channels=1,
        mapping_kwargs={"num_layers": 2},
        channel_base=512,
        channel_max=32,
        num_fp16_res=0,
    ).eval()
    with torch.no_grad():
        out = G(torch.randn(200, 32), torch.zeros(200, 0), noise_mode="const")
    fakes = (out.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    random_gen = find_memorized(fakes, train, calibration, fpr=fpr, size=32)
    assert random_gen.flagged_fraction <= 0.01


def test_leave_one_out_reference_warns(mni_slices):
    with pytest.warns(UserWarning, match="leave-one-out"):
        result = find_memorized(mni_slices[:10], mni_slices[10:60], None, fpr=0.1, size=32)
    assert result.reference == "leave-one-out"
    assert result.holdout_distances.shape == (50,)


def test_report_outputs(tmp_path, mni_slices):
    result = find_memorized(mni_slices[::5], mni_slices[1::2], mni_slices[2::5], fpr=0.1, size=32, top=2)
    summary = result.summary()
    assert 0.0 <= summary["flagged_fraction"] <= 1.0 and summary["num_generated"] == len(mni_slices[::5])
    grid = closest_pairs_grid(result, mni_slices[::5], mni_slices[1::2], num_pairs=4)
    assert grid.dtype == np.uint8 and grid.shape[1] == 64 * 2 + 4
    plot_distances(result, tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 1000
    legend = [t.get_text() for t in plot_distances(result).axes[0].get_legend().get_texts()]
    assert legend == ["generated images", "held-out real images", "threshold: 10% of the reference lies below"]
    loo = find_memorized(mni_slices[::5], mni_slices[1::2], fpr=0.1, size=32)
    assert "leave-one-out" in [t.get_text() for t in plot_distances(loo).axes[0].get_legend().get_texts()][1]


def test_feature_space_search_matches_brute_force_cosine(mni_slices):
    """The Inception-feature path with a stand-in detector (a fixed random projection) against an explicit loop."""
    from medgan_core.evaluation.memorization import find_memorized_by_features

    projection = torch.randn(64 * 64, 16, generator=torch.Generator().manual_seed(0))

    def detector(batch):  # uint8 [N, 1, 64, 64] -> [N, 16]
        return batch.float().flatten(1) @ projection

    gen, train, hold = mni_slices[::9], mni_slices[1::2], mni_slices[2::6]
    result = find_memorized_by_features(gen, train, hold, detector, fpr=0.2, top=2)

    def feats(images):
        return np.stack([img.astype(np.float64).ravel() @ projection.double().numpy() for img in images])

    fg, ft = feats(gen), feats(train)
    cos = (fg @ ft.T) / np.linalg.norm(fg, axis=1)[:, None] / np.linalg.norm(ft, axis=1)[None, :]
    np.testing.assert_array_equal(result.generated_neighbours[:, 0], cos.argmax(axis=1))
    np.testing.assert_allclose(result.generated_distances, 1 - cos.max(axis=1), atol=1e-5)
    assert result.size == 0 and result.reference == "holdout"

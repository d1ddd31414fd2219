import numpy as np
import pytest

from medgan_core.evaluation import frd as frd_module
from medgan_core.utils.io import save_png


def _write(folder, images):
    folder.mkdir()
    for i, image in enumerate(images):
        save_png(image, folder / f"{i:03d}.png")
    return folder


def test_frd_self_zero_and_grows_with_shift(tmp_path, mni_slices):
    ok, reason = frd_module.frd_available()
    assert ok, f"the test setup installs the FRD extra: {reason}"
    base = mni_slices[20:34]
    a = _write(tmp_path / "a", base)
    shifted = [np.clip(base.astype(int) + d, 0, 255).astype(np.uint8) for d in (10, 40)]
    b = _write(tmp_path / "b", shifted[0])
    c = _write(tmp_path / "c", shifted[1])
    same = frd_module.compute_frd(a, a)
    small = frd_module.compute_frd(a, b)
    large = frd_module.compute_frd(a, c)
    assert same["frechet_distance"] == pytest.approx(0.0, abs=1e-6)
    assert 0 < small["frechet_distance"] < large["frechet_distance"]


def test_frd_missing_extra_is_explained(monkeypatch, tmp_path):
    monkeypatch.setattr(frd_module, "frd_available", lambda: (False, frd_module.INSTALL_HINT))
    with pytest.raises(RuntimeError, match="pyradiomics"):
        frd_module.compute_frd(tmp_path, tmp_path)


def test_frd_breakdown_reproduces_frd_score_and_names_constant_features(tmp_path, mni_slices):
    """All finite features give frd-score's own FRD; a feature constant over the real set is flagged as such."""
    base = mni_slices[20:36]
    a = _write(tmp_path / "a", base)
    noisy = np.clip(base.astype(int) + np.random.default_rng(0).integers(0, 30, base.shape), 0, 255)
    b = _write(tmp_path / "b", noisy.astype(np.uint8))
    expected = frd_module.compute_frd(a, b)["frd"]
    summary, table = frd_module.frd_breakdown(a, b, top=5)
    assert summary["log d_F^2, all finite features (frd-score's FRD)"] == pytest.approx(expected, rel=1e-3)
    assert summary["log d_F^2, features that vary over the real set"] <= expected
    assert len(table) == 5 and table["share"].is_monotonic_decreasing
    assert not table["varies over reals"].iloc[0]  # noise moves a feature that the real slices never vary


def test_methods_page_states_the_measured_feature_count():
    """The methods page's feature count is what frd-score v1 computes here, at the book's sizes."""
    import re

    from medgan_core.book.build import REPO_ROOT

    ok, reason = frd_module.frd_available()
    assert ok, f"the test setup installs the FRD extra: {reason}"
    counts = {size: frd_module.frd_feature_count(size) for size in (32, 256)}
    page = (REPO_ROOT / "book" / "methods.md").read_text(encoding="utf-8")
    stated = {int(n) for n in re.findall(r"\*\*(\d+) features per image\*\*", page)}
    assert stated == set(counts.values()), (stated, counts)
    assert "about 460" not in page and "normalised together" not in page

"""The synthetic phantoms look like what they stand for: a body with organs at the recipe's window, varied by seed.

Independent facts: the liver window maps HU to 8 bits as (HU + 125) / 350 * 255 (level 50, width 350); the classes
are counted from the 8-bit slices, not from the phantom's own parameters.
"""

from __future__ import annotations

import numpy as np
import pytest

from medgan_core.data import phantoms


def liver_window(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.floor((hu.astype(np.float64) + 125.0) / 350.0 * 255.0 + 0.5), 0, 255).astype(np.uint8)


CT_RANGES = [(0, 0), (1, 60), (61, 125), (126, 160), (161, 254)]  # air, fat, muscle/bowel, liver-ish, contrast/bone


def classes_present(image: np.ndarray, ranges, min_share: float = 0.002) -> int:
    return sum(((image >= lo) & (image <= hi)).mean() >= min_share for lo, hi in ranges)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ct_liver_slices_show_a_body_with_organs_and_a_visible_liver(seed):
    hu, mask = phantoms.ct_phantom((12, 128, 128), seed=seed)
    liver_slices = np.nonzero(mask.reshape(len(mask), -1).any(axis=1))[0]
    assert 0 < len(liver_slices) < len(mask)
    for z in liver_slices:
        image, liver = liver_window(hu[z]), mask[z].astype(bool)
        assert 0.3 < (image > 0).mean() < 0.95, "foreground fraction of a liver slice"
        assert classes_present(image, CT_RANGES) >= 4, np.unique(image)
        if liver.sum() > 50:  # the liver stands out from the soft tissue around it
            around = (image > 61) & (image < 126) & ~liver
            assert np.median(image[liver]) - np.median(image[around]) >= 10


def test_ct_phantom_varies_across_cases_and_slices_and_repeats_per_seed():
    volumes = [phantoms.ct_phantom((12, 96, 96), seed=seed) for seed in range(4)]
    body_area = [float((hu[6] > -500).mean()) for hu, _ in volumes]
    liver_extent = [tuple(np.nonzero(m.reshape(12, -1).any(1))[0][[0, -1]]) for _, m in volumes]
    assert max(body_area) - min(body_area) > 0.03
    assert len(set(liver_extent)) > 1 or len({int(m.sum()) for _, m in volumes}) > 1
    hu0 = volumes[0][0]
    assert not np.array_equal(liver_window(hu0[3]), liver_window(hu0[8]))  # slices differ along z
    again = phantoms.ct_phantom((12, 96, 96), seed=0)
    assert np.array_equal(again[0], hu0) and np.array_equal(again[1], volumes[0][1])


def test_ct_phantom_keeps_255_for_the_marker_in_the_liver_window():
    hu, _ = phantoms.ct_phantom((12, 96, 96), seed=5)
    image = liver_window(hu)
    box = np.zeros(hu.shape, dtype=bool)
    box[phantoms.marker_box(hu.shape)] = True
    assert (image[box] == 255).all() and not (image[~box] == 255).any()


def test_cardiac_phantom_shows_bright_ventricles_in_a_body_and_contracts():
    diastole = phantoms.cardiac_phantom((6, 108, 128), phase=0.0, seed=1).astype(np.float64)
    systole = phantoms.cardiac_phantom((6, 108, 128), phase=0.35, seed=1).astype(np.float64)
    middle = diastole[3] / diastole.max() * 255
    assert 0.3 < (middle > 5).mean() < 0.95, "foreground fraction"
    histogram = np.histogram(middle[middle > 5], bins=8, range=(5, 255))[0] / middle.size
    assert (histogram > 0.005).sum() >= 4, histogram  # lungs, myocardium/muscle, fat, blood at least
    bright = lambda v: (v > 0.8 * 400).sum()  # noqa: E731  blood pool (0.85-0.9 x scale)
    assert bright(systole[3]) < 0.8 * bright(diastole[3])  # the ventricles shrink in systole
    assert np.array_equal(diastole, phantoms.cardiac_phantom((6, 108, 128), phase=0.0, seed=1))

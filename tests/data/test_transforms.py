"""Transforms against closed-form values and SimpleITK."""

import numpy as np
import pytest
import SimpleITK as sitk

from medgan_core.data import transforms


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.int32])
def test_liver_window_values(dtype):
    hu = np.array([-1024, -125, 50, 225, 3000], dtype=dtype)
    out = transforms.window(hu, level=50, width=350)
    assert out.dtype == np.uint8
    assert out[0] == 0 and out[1] == 0 and out[3] == 255 and out[4] == 255
    assert abs(int(out[2]) - 128) <= 1


def test_window_follows_the_stated_formula_on_every_int16_value():
    hu = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
    expected = np.floor(np.clip((hu.astype(np.float64) - (40 - 400 / 2)) / 400 * 255, 0, 255) + 0.5)
    np.testing.assert_array_equal(transforms.window(hu, 40, 400), expected.astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32])
def test_rescale_matches_simpleitk_rescaleintensity(dtype):
    rng = np.random.default_rng(1)
    volume = (
        rng.integers(-900, 2500, size=(6, 20, 24)).astype(dtype)
        if dtype != np.uint16
        else (rng.integers(0, 4000, size=(6, 20, 24)).astype(dtype))
    )
    reference = sitk.GetArrayFromImage(
        sitk.RescaleIntensity(sitk.Cast(sitk.GetImageFromArray(volume), sitk.sitkFloat64), 0.0, 255.0)
    )
    ours = transforms.rescale_intensity(volume)
    np.testing.assert_array_equal(ours, np.floor(reference + 0.5).astype(np.uint8))
    per_slice = [transforms.rescale_intensity(s, volume.min(), volume.max()) for s in volume]
    np.testing.assert_array_equal(np.stack(per_slice), ours)


def test_rescale_of_a_constant_volume_is_black():
    assert not transforms.rescale_intensity(np.full((2, 3, 3), 7.0)).any()


def test_pad_to_square_centres_with_zeros():
    image = np.full((3, 5), 9, dtype=np.uint8)
    out = transforms.pad_to_square(image, 8)
    assert out.shape == (8, 8)
    assert (out[2:5, 1:6] == 9).all() and out.sum() == 9 * 15  # top 2 rows, left 1 column, odd pixel last
    with pytest.raises(ValueError, match="larger"):
        transforms.pad_to_square(np.zeros((9, 4), np.uint8), 8)


def test_resize_named_filter():
    image = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(transforms.resize(image, 4, "nearest"), np.kron(image, np.ones((2, 2), np.uint8)))
    with pytest.raises(ValueError, match="unknown resize filter"):
        transforms.resize(image, 4, "sinc")
    assert transforms.fit_to_square(np.zeros((30, 20), np.uint8), 16, "pad-or-resize").shape == (16, 16)
    with pytest.raises(ValueError, match="expected 16x16"):
        transforms.check_fit((30, 20), 16, "none")


def test_channel_extraction_and_slice_selection():
    volume = np.arange(4 * 2 * 3 * 3).reshape(4, 2, 3, 3)
    np.testing.assert_array_equal(transforms.extract_channel(volume, 2), volume[2])
    with pytest.raises(ValueError, match="4 channels"):
        transforms.extract_channel(volume, 4)
    mask = np.zeros((5, 4, 4), np.uint8)
    mask[1, 0, 0], mask[3, 2, 2], mask[4, 1, 1] = 1, 2, 3
    np.testing.assert_array_equal(transforms.slices_with_labels(mask, [1, 2]), [1, 3])
    display = np.zeros((4, 3, 3), np.uint8)
    display[2, 1, 1] = 5
    np.testing.assert_array_equal(transforms.nonempty_slices(display), [2])
    np.testing.assert_array_equal(transforms.nonempty_slices(display, threshold=5), [])


def test_grayscale_conversion():
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    np.testing.assert_array_equal(transforms.to_grayscale(rgba), gray)
    colour = np.zeros((1, 1, 3), np.uint8)
    colour[0, 0] = (200, 100, 50)
    luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50  # ITU-R 601
    assert abs(int(transforms.to_grayscale(colour)[0, 0]) - luma) <= 1
    with pytest.raises(ValueError, match="8-bit"):
        transforms.to_grayscale(np.zeros((2, 2), np.uint16))


def test_nan_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        transforms.check_finite(np.array([1.0, np.nan]), "volume")

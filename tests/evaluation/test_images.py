"""load_images: one array from a folder or a zip of PNGs, the same pixels either way, clear errors otherwise."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image

from medgan_core.data.images import DatasetError
from medgan_core.evaluation.images import load_images


def _write_set(folder, slices) -> list[str]:
    folder.mkdir(parents=True)
    names = []
    for i, image in enumerate(slices):
        name = f"slice{i:03d}.png"
        Image.fromarray(image[:, :, 0]).save(folder / name)
        names.append(name)
    return names


def test_folder_and_zip_give_the_written_pixels(mni_slices, tmp_path):
    slices = mni_slices[:5]
    names = _write_set(tmp_path / "set", slices)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in reversed(names):  # stored out of order: the reader sorts
            zf.write(tmp_path / "set" / name, name)

    for source in (tmp_path / "set", archive):
        pixels, read_names = load_images(source)
        assert read_names == names
        assert pixels.dtype == np.uint8 and pixels.shape == (5, 64, 64, 1)
        np.testing.assert_array_equal(pixels, slices)

    pixels, read_names = load_images(archive, max_images=2)
    assert read_names == names[:2]
    np.testing.assert_array_equal(pixels, slices[:2])


def test_rgb_images_keep_three_channels(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    (tmp_path / "set").mkdir()
    Image.fromarray(rgb).save(tmp_path / "set" / "a.png")
    pixels, _ = load_images(tmp_path / "set")
    np.testing.assert_array_equal(pixels[0], rgb)


def test_mixed_sizes_name_both_files(tmp_path):
    (tmp_path / "set").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "set" / "a.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "set" / "b.png")
    with pytest.raises(DatasetError, match=r"b\.png: 1x16x16 .* differs from the majority's 1x8x8"):
        load_images(tmp_path / "set")


def test_sixteen_bit_images_are_refused_not_clipped(tmp_path):
    (tmp_path / "set").mkdir()
    Image.fromarray(np.full((8, 8), 1000, np.uint16)).save(tmp_path / "set" / "ct.png")
    with pytest.raises(ValueError, match=r"ct\.png.*8-bit"):
        load_images(tmp_path / "set")


def test_missing_or_empty_sets_say_what_to_give(tmp_path):
    with pytest.raises(DatasetError, match="not a folder or a zip"):
        load_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        load_images(tmp_path / "empty")

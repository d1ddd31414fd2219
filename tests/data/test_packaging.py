"""StyleGAN2-ADA dataset zips: layout, dataset.json, checks that name the offending files."""

import json
import zipfile

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from medgan_core.data.packaging import DatasetError, make_dataset_zip
from medgan_core.utils.io import save_png


def _images(folder, count=3, size=8, mode="L"):
    rng = np.random.default_rng(0)
    for index in range(count):
        shape = (size, size) if mode == "L" else (size, size, 3)
        save_png(rng.integers(0, 256, shape, dtype=np.uint8), folder / f"{index:04d}_s0000.png")


def test_zip_layout_matches_dataset_tool(tmp_path):
    _images(tmp_path / "png", count=3)
    info = make_dataset_zip(tmp_path / "png", tmp_path / "data.zip")
    assert info == {"images": 3, "resolution": 8, "channels": 1, "labels": False}
    with zipfile.ZipFile(tmp_path / "data.zip") as archive:
        names = archive.namelist()
        assert names == ["00000/img00000000.png", "00000/img00000001.png", "00000/img00000002.png", "dataset.json"]
        assert json.loads(archive.read("dataset.json")) == {"labels": None}
        assert archive.read(names[1]) == (tmp_path / "png" / "0001_s0000.png").read_bytes()
    first = (tmp_path / "data.zip").read_bytes()
    make_dataset_zip(tmp_path / "png", tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == first  # deterministic bytes


def test_labels_from_csv(tmp_path):
    _images(tmp_path / "png", count=2)
    (tmp_path / "labels.csv").write_text("file,label\n0000_s0000.png,1\n0001_s0000.png,0\n")
    make_dataset_zip(tmp_path / "png", tmp_path / "data.zip", labels_csv=tmp_path / "labels.csv")
    with zipfile.ZipFile(tmp_path / "data.zip") as archive:
        labels = json.loads(archive.read("dataset.json"))["labels"]
    assert labels == [["00000/img00000000.png", 1], ["00000/img00000001.png", 0]]
    (tmp_path / "short.csv").write_text("file,label\n0000_s0000.png,1\n")
    with pytest.raises(DatasetError, match="0001_s0000.png"):
        make_dataset_zip(tmp_path / "png", tmp_path / "x.zip", labels_csv=tmp_path / "short.csv")


def test_every_offending_file_is_named_and_nothing_is_written(tmp_path):
    folder = tmp_path / "png"
    _images(folder, count=3, size=16)
    save_png(np.zeros((16, 12), np.uint8), folder / "wide.png")
    save_png(np.zeros((12, 12), np.uint8), folder / "twelve.png")
    save_png(np.zeros((16, 16, 3), np.uint8), folder / "colour.png")
    Image.fromarray(np.zeros((16, 16), np.uint16)).save(folder / "deep.png")
    with pytest.raises(DatasetError) as error:
        make_dataset_zip(folder, tmp_path / "data.zip")
    message = str(error.value)
    for name, reason in [
        ("wide.png", "not square"),
        ("twelve.png", "not a power of two"),
        ("colour.png", "channel mode"),
        ("deep.png", "mode I;16"),
    ]:
        assert any(name in line and reason in line for line in message.splitlines()), (name, message)
    assert not (tmp_path / "data.zip").exists() and list(tmp_path.glob("*.tmp")) == []


def test_resolution_is_checked(tmp_path):
    _images(tmp_path / "png", count=2, size=8)
    with pytest.raises(DatasetError, match="--resolution asks for 16"):
        make_dataset_zip(tmp_path / "png", tmp_path / "data.zip", resolution=16)


def test_metadata_chunks_are_stripped(tmp_path):
    folder = tmp_path / "png"
    folder.mkdir()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "Patient Doe^Jane")
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(pixels).save(folder / "tagged.png", pnginfo=info)
    make_dataset_zip(folder, tmp_path / "data.zip")
    with zipfile.ZipFile(tmp_path / "data.zip") as archive:
        data = archive.read("00000/img00000000.png")
    assert b"Doe^Jane" not in data and b"tEXt" not in data
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "tagged.png")), pixels)

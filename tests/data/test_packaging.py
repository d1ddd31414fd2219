"""StyleGAN2-ADA dataset zips: layout, dataset.json, checks that name the offending files."""

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from medgan_core.data.packaging import DatasetError, make_dataset_zip
from medgan_core.utils.io import save_png
from tests.data.nvidia_dataset import nvidia_dataset_tool, nvidia_read


def _images(folder, count=3, size=8, mode="L"):
    rng = np.random.default_rng(0)
    for index in range(count):
        shape = (size, size) if mode == "L" else (size, size, 3)
        save_png(rng.integers(0, 256, shape, dtype=np.uint8), folder / f"{index:04d}_s0000.png")


def test_zip_layout_matches_dataset_tool(tmp_path):
    _images(tmp_path / "png", count=3)
    info = make_dataset_zip(tmp_path / "png", tmp_path / "data.zip")
    assert info == {"images": 3, "resolution": 8, "channels": 1, "labels": False, "resized": 0}
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


def _zip_pixels(path) -> tuple[list[str], np.ndarray, list | None]:
    """(image names, uint8 [N, H, W, C] pixels, labels) of a dataset zip, read with PIL and json only."""
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))
        pixels = [np.asarray(Image.open(io.BytesIO(archive.read(n)))) for n in names]
        labels = json.loads(archive.read("dataset.json"))["labels"]
    return names, np.stack([p[:, :, None] if p.ndim == 2 else p for p in pixels]), labels


def _ramp_images(folder, side=48, rgb=False):
    """side x side images: a constant grey, a horizontal ramp and noise (grayscale, or RGB with rgb=True)."""
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.tile(np.linspace(0, 255, side).round().astype(np.uint8), (side, 1))
    noise = np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8)
    for name, image in [("a_flat", np.full((side, side), 77, np.uint8)), ("b_ramp", ramp), ("c_noise", noise)]:
        if rgb and image.ndim == 2:
            image = np.stack([image, image.T, 255 - image], axis=2)
        save_png(image if rgb else image[..., 0] if image.ndim == 3 else image, folder / f"{name}.png")
    return ramp


def test_resolution_resizes_square_images_with_lanczos(tmp_path):
    ramp = _ramp_images(tmp_path / "gray")
    info = make_dataset_zip(tmp_path / "gray", tmp_path / "data.zip", resolution=32)
    assert info["resolution"] == 32 and info["resized"] == 3
    _, pixels, _ = _zip_pixels(tmp_path / "data.zip")
    assert pixels.shape == (3, 32, 32, 1)
    assert (pixels[0] == 77).all()  # a flat image stays flat
    expected = np.linspace(0, 255, 32)  # a linear ramp stays the ramp away from the borders
    assert np.abs(pixels[1, :, 4:-4, 0].astype(float) - expected[4:-4]).max() <= 2
    reference = Image.fromarray(ramp).resize((32, 32), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(pixels[1, :, :, 0], np.asarray(reference))


def test_resolution_matches_nvidias_dataset_tool(tmp_path, nvidia_src):
    for rgb in (False, True):
        folder = tmp_path / f"png{rgb}"
        _ramp_images(folder, rgb=rgb)
        for side in (64, 32):
            ours, theirs = tmp_path / f"ours{rgb}{side}.zip", tmp_path / f"nvidia{rgb}{side}.zip"
            make_dataset_zip(folder, ours, resolution=side)
            nvidia_dataset_tool(nvidia_src, folder, theirs, f"--resolution={side}x{side}")
            a, b = _zip_pixels(ours), _zip_pixels(theirs)
            assert a[0] == b[0] and a[2] == b[2] and a[1].shape == (3, side, side, 3 if rgb else 1)
            np.testing.assert_array_equal(a[1], b[1])


def test_resolution_refuses_to_stretch(tmp_path):
    folder = tmp_path / "png"
    _images(folder, count=2, size=16)
    save_png(np.zeros((16, 12), np.uint8), folder / "wide.png")
    with pytest.raises(DatasetError, match=r"wide\.png: 12x16 is not square; --resolution .* crop or pad"):
        make_dataset_zip(folder, tmp_path / "data.zip", resolution=8)
    assert not (tmp_path / "data.zip").exists()


def test_truncated_and_corrupt_images_are_all_named_and_nothing_is_written(tmp_path):
    folder = tmp_path / "png"
    _images(folder, count=3, size=16)
    whole = (folder / "0001_s0000.png").read_bytes()
    (folder / "cut.png").write_bytes(whole[: len(whole) // 2])  # a valid header: only decoding finds it
    (folder / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (tmp_path / "data.zip").write_bytes(b"the previous zip")
    with pytest.raises(DatasetError) as error:
        make_dataset_zip(folder, tmp_path / "data.zip")
    message = str(error.value)
    assert "2 problem(s)" in message and "nothing written" in message
    assert any("cut.png" in line and "cannot decode" in line for line in message.splitlines()), message
    assert any("junk.png" in line and "cannot decode" in line for line in message.splitlines()), message
    assert (tmp_path / "data.zip").read_bytes() == b"the previous zip"  # left as it was, never half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.zip", "png"]  # no temporary file left behind


def test_source_dataset_json_labels_are_honoured(tmp_path):
    folder = tmp_path / "png"
    for name, seed in [("sub/b.png", 0), ("a.png", 1), ("sub/a.png", 2)]:
        save_png(np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8), folder / name)
    (folder / "dataset.json").write_text(json.dumps({"labels": [["sub/b.png", 2], ["a.png", 0], ["sub/a.png", 1]]}))
    info = make_dataset_zip(folder, tmp_path / "data.zip")
    assert info["labels"] is True
    names, pixels, labels = _zip_pixels(tmp_path / "data.zip")
    assert labels == [["00000/img00000000.png", 0], ["00000/img00000001.png", 1], ["00000/img00000002.png", 2]]
    np.testing.assert_array_equal(pixels[2, :, :, 0], np.asarray(Image.open(folder / "sub/b.png")))
    (folder / "dataset.json").write_text(json.dumps({"labels": [["sub/b.png", [0.5, 1]], ["a.png", [0, 0.25]],
                                                                ["sub/a.png", [1, 1]]]}))  # fmt: skip
    make_dataset_zip(folder, tmp_path / "vectors.zip")
    assert [label for _, label in _zip_pixels(tmp_path / "vectors.zip")[2]] == [[0, 0.25], [1, 1], [0.5, 1]]
    (tmp_path / "labels.csv").write_text("file,label\na.png,1\nsub/a.png,1\nsub/b.png,0\n")
    with pytest.raises(DatasetError, match="both give labels"):
        make_dataset_zip(folder, tmp_path / "x.zip", labels_csv=tmp_path / "labels.csv")
    (folder / "dataset.json").write_text(json.dumps({"labels": [["a.png", 0]]}))
    with pytest.raises(DatasetError, match=r"dataset\.json: no label for 2 image\(s\): sub/a\.png, sub/b\.png"):
        make_dataset_zip(folder, tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_zips_agree_with_nvidias_tool_and_reader(tmp_path, nvidia_src):
    """Labelled RGB and grayscale sets: medgan's zip equals dataset_tool.py's in names, pixels and labels, and
    NVIDIA's ImageFolderDataset reads medgan's zip as medgan's loader does (and NVIDIA's zip likewise)."""
    from medgan_core.training.dataset import ImageFolderDataset

    for channels in (1, 3):
        folder = tmp_path / f"png{channels}"
        rng = np.random.default_rng(channels)
        names = [f"{k}/img{i}.png" for k in ("x", "y") for i in range(3)]
        for name in names:
            save_png(rng.integers(0, 256, (16, 16) if channels == 1 else (16, 16, 3), dtype=np.uint8), folder / name)
        (folder / "dataset.json").write_text(json.dumps({"labels": [[n, i % 4] for i, n in enumerate(names)]}))
        ours, theirs = tmp_path / f"ours{channels}.zip", tmp_path / f"nvidia{channels}.zip"
        make_dataset_zip(folder, ours)
        nvidia_dataset_tool(nvidia_src, folder, theirs)
        a, b = _zip_pixels(ours), _zip_pixels(theirs)
        assert a[0] == b[0] and a[2] == b[2]
        np.testing.assert_array_equal(a[1], b[1])
        for archive in (ours, theirs):
            dataset = ImageFolderDataset(archive, use_labels=True)
            images = np.stack([dataset[i][0] for i in range(len(dataset))])
            labels = np.stack([dataset.get_label(i) for i in range(len(dataset))])
            nvidia_images, nvidia_labels = nvidia_read(nvidia_src, archive, tmp_path)
            np.testing.assert_array_equal(images, nvidia_images)
            np.testing.assert_array_equal(labels, nvidia_labels)
            assert labels.shape == (6, 4)


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

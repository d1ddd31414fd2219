"""The one image reader (medgan_core.data.images): formats, pixel modes, whole-set checks, labels, bad files."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from medgan_core.data.images import DatasetError, ImageSource, decode_image, list_image_names
from medgan_core.evaluation.images import load_images
from medgan_core.training.dataset import ImageFolderDataset


def _random(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_accepted_format_is_read_as_pil_decodes_it(tmp_path):
    rgb = _random((16, 16, 3))
    folder = tmp_path / "set"
    (folder / "sub").mkdir(parents=True)
    for name, options in [("a.png", {}), ("b.bmp", {}), ("c.tiff", {}), ("sub/d.webp", {"lossless": True})]:
        Image.fromarray(rgb).save(folder / name, **options)
    Image.fromarray(rgb).save(folder / "e.jpg", quality=90)
    (folder / ".hidden.png").write_bytes(b"not an image")  # skipped: hidden
    (folder / "notes.txt").write_text("skipped: not an image")
    source = ImageSource(folder)
    assert source.names == ["a.png", "b.bmp", "c.tiff", "e.jpg", "sub/d.webp"] == list_image_names(folder)
    for index, name in enumerate(source.names):
        expected = rgb if name != "e.jpg" else np.asarray(Image.open(folder / name))  # JPEG: PIL's decode
        np.testing.assert_array_equal(source.read(index), expected.transpose(2, 0, 1), err_msg=name)
    assert source.check() == [3, 16, 16]


def test_training_metrics_and_evaluation_accept_the_same_jpeg_set(tmp_path):
    folder = tmp_path / "jpegs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_random((8, 8), seed=i)).save(folder / f"{i}.jpg")
    training = np.stack([ImageFolderDataset(folder)[i][0] for i in range(3)])
    metrics = ImageSource(folder).batch(range(3)).numpy()
    evaluation, _ = load_images(folder)
    np.testing.assert_array_equal(training, metrics)
    np.testing.assert_array_equal(evaluation.transpose(0, 3, 1, 2), metrics)


def test_pixel_modes_are_converted_or_refused_by_one_rule(tmp_path):
    gray = _random((8, 8))
    palette = Image.fromarray(_random((8, 8, 3))).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    cases = {
        "p.png": (palette, np.asarray(palette.convert("RGB"))),
        "la.png": (Image.fromarray(np.stack([gray, gray], axis=2), "LA"), gray[:, :, None]),
        "one.png": (Image.fromarray(gray > 127), (gray > 127).astype(np.uint8)[:, :, None] * 255),
    }
    for name, (image, expected) in cases.items():
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        np.testing.assert_array_equal(decode_image(buffer.getvalue(), name), expected, err_msg=name)
    for name, array in [("deep.png", np.full((8, 8), 1000, np.uint16)), ("float.tiff", np.zeros((8, 8), np.float32))]:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG" if name.endswith("png") else "TIFF")
        with pytest.raises(DatasetError, match=rf"{name}: mode \S+ is not 8-bit"):
            decode_image(buffer.getvalue(), name)


def test_a_truncated_file_is_named_when_decoded(tmp_path):
    good = _png(_random((32, 32)))
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("00000/img00000000.png", good)
        zf.writestr("00000/img00000001.png", good[: len(good) // 2])  # header intact, pixels cut
    source = ImageSource(archive)
    assert source.check() == [1, 32, 32]  # headers alone cannot tell
    source.read(0)
    with pytest.raises(DatasetError, match=r"set\.zip/00000/img00000001\.png: cannot decode"):
        source.read(1)


@pytest.mark.parametrize("batch", [1, 3])
def test_the_whole_set_is_checked_before_the_first_batch(tmp_path, batch):
    folder = tmp_path / "set"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(_random((16, 16), seed=i)).save(folder / f"{i}.png")
    Image.fromarray(_random((8, 8))).save(folder / "odd.png")
    source = ImageSource(folder)
    with pytest.raises(DatasetError, match=r"odd\.png: 1x8x8 .* differs from the majority's 1x16x16"):
        next(source.iter_batches(batch))  # the first batch holds only good images


def test_labels_are_read_as_nvidia_reads_them(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("b.png", "a.png"):
        Image.fromarray(_random((4, 4))).save(folder / name)
    meta = folder / "dataset.json"
    assert ImageSource(folder).labels() is None
    meta.write_text(json.dumps({"labels": None}))
    assert ImageSource(folder).labels() is None
    meta.write_text(json.dumps({"labels": [["b.png", 2], ["a.png", 0]]}))
    labels = ImageSource(folder).labels()
    assert labels.dtype == np.int64 and labels.tolist() == [0, 2]  # image order: a.png, b.png
    meta.write_text(json.dumps({"labels": [["b.png", [0.5, 1.0]], ["a.png", [0.25, 0.0]]]}))
    labels = ImageSource(folder).labels()
    assert labels.dtype == np.float32 and labels.tolist() == [[0.25, 0.0], [0.5, 1.0]]
    meta.write_text(json.dumps({"labels": [["b.png", 1]]}))
    with pytest.raises(DatasetError, match=r"no label for 1 image\(s\): a\.png"):
        ImageSource(folder).labels()
    meta.write_text(json.dumps({"labels": [["b.png", 1], ["a.png", [0.5]]]}))
    with pytest.raises(DatasetError, match="all be class indices"):
        ImageSource(folder).labels()


def test_missing_and_empty_sets_are_explained(tmp_path):
    with pytest.raises(DatasetError, match="not a folder or a zip"):
        ImageSource(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "index.csv").write_text("file\n")
    with pytest.raises(DatasetError, match="no images found"):
        ImageSource(tmp_path / "empty")

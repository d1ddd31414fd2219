"""Package a folder of images as a StyleGAN2-ADA dataset zip, as NVIDIA's `dataset_tool.py` does.

Layout (as dataset_tool.py writes it): images ``00000/img00000000.png``, ``00000/img00000001.png``, ... (the folder
is the first five digits of the eight-digit index) in sorted order of the source's relative paths, and
``dataset.json`` = ``{"labels": null}`` or ``{"labels": [["00000/img00000000.png", 3], ...]}``.

Sources are read by `medgan_core.data.images` (PNG, JPEG, BMP, TIFF, WebP; 8-bit grayscale or RGB, see there),
every image decoded in full. Labels come from ``--labels CSV`` or from a ``dataset.json`` in the source folder
(NVIDIA's format, honoured as dataset_tool.py does). ``resolution`` resizes square images of another size to
resolution x resolution with PIL's Lanczos filter (``Image.Resampling.LANCZOS``, dataset_tool.py's filter);
non-square images are refused rather than stretched. Every image must end up square, a power of two on a side,
one size and one channel count, because the training loader stacks them into one [N, C, R, R] tensor.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from medgan_core.data.images import (
    DatasetError,
    ImageSource,
    decode_image,
    listing,
    shape_problems,
    stylegan_size_problem,
)
from medgan_core.utils.io import atomic_write, png_bytes

__all__ = ["DatasetError", "make_dataset_zip", "resize_square"]

CLEAN_PNG_CHUNKS = {b"IHDR", b"IDAT", b"IEND"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same inputs give the same zip bytes


def _is_clean_8bit_png(data: bytes) -> bool:
    """A PNG holding only IHDR/IDAT/IEND chunks with 8-bit gray or RGB pixels: copied into the zip as it is."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return False
    bit_depth, colour_type = data[24], data[25]
    if bit_depth != 8 or colour_type not in (0, 2):  # 0: grayscale, 2: RGB
        return False
    pos, types = 8, set()
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        types.add(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types <= CLEAN_PNG_CHUNKS


def resize_square(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 [H, H, C] -> uint8 [resolution, resolution, C] with PIL's Lanczos filter (dataset_tool.py's)."""
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    resized = np.asarray(image.resize((resolution, resolution), Image.Resampling.LANCZOS))
    return resized[:, :, None] if resized.ndim == 2 else resized


def _read_labels(path: Path, names: list[str]) -> dict[str, int]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"file", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: labels CSV needs the columns 'file' and 'label'")
        labels = {}
        for line, row in enumerate(reader, start=2):
            try:
                labels[row["file"]] = int(row["label"])
            except (TypeError, ValueError):
                raise DatasetError(f"{path}, line {line}: label {row['label']!r} is not an integer") from None
    missing = [n for n in names if n not in labels]
    if missing:
        raise DatasetError(f"{path}: no label for {len(missing)} image(s): {listing(missing)}")
    return labels


def _pack_image(data: bytes, where: str, resolution: int | None) -> tuple[bytes, np.ndarray, bool]:
    """(PNG bytes for the zip, uint8 [H, W, C] pixels, resized?) of one source file; DatasetError naming it."""
    pixels = decode_image(data, where)  # every pixel: a truncated file fails here
    height, width = pixels.shape[:2]
    resized = resolution is not None and (height, width) != (resolution, resolution)
    if resized:
        if height != width:
            raise DatasetError(
                f"{where}: {width}x{height} is not square; --resolution resizes square images only (it does not "
                "stretch): crop or pad it to square first"
            )
        pixels = resize_square(pixels, resolution)
    problem = stylegan_size_problem(pixels.shape[1], pixels.shape[0])
    if problem:
        raise DatasetError(f"{where}: {problem}")
    if not resized and _is_clean_8bit_png(data):
        return data, pixels, False
    return png_bytes(pixels), pixels, resized


def _labels(source: ImageSource, labels_csv: str | Path | None) -> list | None:
    """Label values in image order from --labels CSV or the source's dataset.json (None: unlabelled)."""
    from_json = source.labels()
    if labels_csv is not None:
        if from_json is not None:
            raise DatasetError(f"{source.where('dataset.json')} and {labels_csv} both give labels; remove one of them")
        by_name = _read_labels(Path(labels_csv), source.names)
        return [by_name[name] for name in source.names]
    return None if from_json is None else from_json.tolist()


def make_dataset_zip(
    source: str | Path,
    dest: str | Path,
    resolution: int | None = None,
    labels_csv: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Write the images under `source` (sorted by relative path) to `dest` in StyleGAN2-ADA's zip layout.

    Returns {"images", "resolution", "channels", "labels", "resized"}. Every image is decoded in full and
    checked; when any fails, DatasetError lists every offending file and nothing is written (the zip is built
    under a temporary name and renamed only when complete). Clean 8-bit PNGs are copied byte for byte; other
    images (metadata chunks, other formats or modes, resized) are re-encoded as metadata-free PNGs.
    """
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise DatasetError(f"{source}: source folder not found")
    images = ImageSource(source)
    labels = _labels(images, labels_csv)
    archive_names = [f"{i:08d}"[:5] + f"/img{i:08d}.png" for i in range(len(images))]
    problems: list[str] = []
    shapes: dict[tuple[int, int, int], list[str]] = {}
    resized = 0
    with atomic_write(dest, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, archive_name in tqdm(
            list(zip(images.names, archive_names)), desc="dataset", unit="img", disable=not progress
        ):
            try:
                data, pixels, was_resized = _pack_image(images.read_bytes(name), images.where(name), resolution)
            except DatasetError as exc:
                problems.append(str(exc))
                continue
            height, width, channels = pixels.shape
            shapes.setdefault((channels, height, width), []).append(name)
            resized += was_resized
            if not problems:  # once anything failed the zip is discarded: only keep checking
                archive.writestr(zipfile.ZipInfo(archive_name, date_time=ZIP_DATE), data)
        problems += shape_problems(shapes)
        if problems:  # raised inside atomic_write: the temporary zip is deleted, `dest` is left as it was
            raise DatasetError(f"{len(problems)} problem(s) in {source}, nothing written:\n  " + "\n  ".join(problems))
        label_list = None if labels is None else [[a, label] for a, label in zip(archive_names, labels)]
        archive.writestr(zipfile.ZipInfo("dataset.json", date_time=ZIP_DATE), json.dumps({"labels": label_list}))
    channels, side, _ = next(iter(shapes))
    labelled = labels is not None
    return {"images": len(images), "resolution": side, "channels": channels, "labels": labelled, "resized": resized}

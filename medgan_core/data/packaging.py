"""Package PNG slices as a StyleGAN2-ADA dataset zip.

Layout (as NVIDIA's dataset_tool.py writes it): images ``00000/img00000000.png``, ``00000/img00000001.png``,
... (1000 per folder is not a rule there: the folder is the first five digits of the eight-digit index) and
``dataset.json`` = ``{"labels": null}`` or ``{"labels": [["00000/img00000000.png", 3], ...]}``.
Images must all be square, a power of two on a side, the same size and the same channel count (grayscale 'L'
or 'RGB'), because the training loader stacks them into one [N, C, R, R] tensor.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from medgan_core.utils.io import atomic_write, png_bytes

ALLOWED_MODES = {"L": 1, "RGB": 3}
CLEAN_PNG_CHUNKS = {b"IHDR", b"IDAT", b"IEND"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same inputs give the same zip bytes


class DatasetError(ValueError):
    """Images that cannot form one dataset; the message lists every offending file and why."""


def _png_chunks(data: bytes) -> set[bytes]:
    pos, types = 8, set()
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        types.add(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


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
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DatasetError(f"{path}: no label for {len(missing)} image(s): {shown}")
    return labels


def check_images(files: list[Path], source: Path, resolution: int | None = None) -> tuple[int, str]:
    """Check every PNG; return (resolution, mode) or raise DatasetError listing every offender."""
    problems, sizes, modes = [], {}, {}
    for path in files:
        name = path.relative_to(source).as_posix()
        try:
            with Image.open(path) as image:
                size, mode = image.size, image.mode
        except Exception as exc:
            problems.append(f"{name}: unreadable ({type(exc).__name__})")
            continue
        if mode not in ALLOWED_MODES:
            problems.append(f"{name}: mode {mode} (needs 8-bit grayscale 'L' or 'RGB')")
        if size[0] != size[1]:
            problems.append(f"{name}: not square ({size[0]}x{size[1]})")
        elif not _is_power_of_two(size[0]):
            problems.append(f"{name}: side {size[0]} is not a power of two")
        elif resolution is not None and size[0] != resolution:
            problems.append(f"{name}: {size[0]}x{size[1]}, --resolution asks for {resolution}")
        sizes.setdefault(size, []).append(name)
        modes.setdefault(mode, []).append(name)
    for groups, what in ((sizes, "size"), (modes, "channel mode")):
        if len(groups) > 1:
            majority = max(groups, key=lambda k: len(groups[k]))
            for key, names in groups.items():
                if key != majority:
                    shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
                    problems.append(f"{shown}: {what} {key} differs from the majority's {majority}")
    if problems:
        raise DatasetError(f"{len(problems)} problem(s) in {source}:\n  " + "\n  ".join(problems))
    (width, _), mode = next(iter(sizes)), next(iter(modes))
    return width, mode


def make_dataset_zip(
    source: str | Path, dest: str | Path, resolution: int | None = None, labels_csv: str | Path | None = None
) -> dict:
    """Write the PNGs under `source` (sorted by relative path) to `dest` in StyleGAN2-ADA's zip layout.

    Returns {"images", "resolution", "channels", "labels"}. Nothing is written when any image fails a check.
    PNGs that already carry no metadata are copied byte for byte; others are re-encoded without it.
    """
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise DatasetError(f"{source}: source folder not found")
    files = sorted(
        (p for p in source.rglob("*.png") if not p.name.startswith(".")),
        key=lambda p: p.relative_to(source).as_posix(),
    )
    if not files:
        raise DatasetError(f"{source}: no PNG images found")
    width, mode = check_images(files, source, resolution)
    names = [p.relative_to(source).as_posix() for p in files]
    labels = _read_labels(Path(labels_csv), names) if labels_csv is not None else None

    archive_names = [f"{i:08d}"[:5] + f"/img{i:08d}.png" for i in range(len(files))]
    with atomic_write(dest, "wb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as archive:
            for path, archive_name in zip(files, archive_names):
                data = path.read_bytes()
                if not _png_chunks(data) <= CLEAN_PNG_CHUNKS:
                    with Image.open(io.BytesIO(data)) as image:
                        data = png_bytes(np.asarray(image))
                archive.writestr(zipfile.ZipInfo(archive_name, date_time=ZIP_DATE), data)
            label_list = None if labels is None else [[a, labels[n]] for a, n in zip(archive_names, names)]
            info = zipfile.ZipInfo("dataset.json", date_time=ZIP_DATE)
            archive.writestr(info, json.dumps({"labels": label_list}))
    return {"images": len(files), "resolution": width, "channels": ALLOWED_MODES[mode], "labels": labels is not None}

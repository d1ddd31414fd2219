"""Building visual Turing tests: a self-contained HTML test and a separate answer key.

One generated set gives the clinician test (one section of n_real real + n_generated generated images); several
give the multi-model test (one section per generated set, each with its own n_real real images, sections in a
random order). Images are sampled without replacement and no image (by pixel content) appears twice in the whole
test. Near-empty real images (less than `min_foreground` of the frame differs from the background) are never
drawn: they would give the real images away. Everything follows from the seed: the same inputs and seed give
byte-identical outputs. The page shows the images in the key's order (the paper's design: one fixed order for
every rater) or, with `shuffle_per_rater`, in an order the page draws per rater from a seed it records in the
export (`order.shuffled_order` reproduces it).

Outputs in `out_dir`:
    turing_test.html   the test to send to raters (images inlined as metadata-free PNG data URIs; no network)
    answer_key.csv     image, truth (real|generated), section, section_number, source, test_id: keep it away
                       from the raters
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medgan_core.data.images import decode_image, list_image_names
from medgan_core.utils.io import atomic_write, png_bytes

HTML_NAME = "turing_test.html"
KEY_NAME = "answer_key.csv"
_DATA_TOKEN = "__TURING_TEST_DATA__"
DEFAULT_MIN_FOREGROUND = 0.05  # real images with less than 5% foreground are skipped (the MNI top-of-head slices)
FOREGROUND_TOLERANCE = 10  # grey levels (of 255) a pixel must differ from the background to count as foreground


class TuringBuildError(ValueError):
    """The inputs cannot make the requested test (too few images, unreadable files, the same folder twice)."""


@dataclass(frozen=True)
class SampledImage:
    """One image of the test: anonymous id, truth, section name, source path relative to its folder, PNG bytes."""

    image_id: str
    truth: str  # "real" | "generated"
    section: str  # the generated set's name (the key's section; the HTML shows only the section's number)
    source: str  # "<set>/<relative path>", for the key only
    png: bytes


@dataclass(frozen=True)
class TuringTest:
    """A built test: where it was written and what it holds."""

    html_path: Path
    key_path: Path
    test_id: str
    sections: list[str]  # generated-set names in presentation order
    n_images: int
    n_skipped_empty: int = 0  # near-empty real images passed over while sampling
    min_foreground: float = DEFAULT_MIN_FOREGROUND


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under `folder` (recursively), sorted by relative path so the order is platform-independent."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TuringBuildError(f"image folder not found: {folder} (pass a folder of PNG images)")
    return [folder / name for name in list_image_names(folder)]  # the file types and order every reader uses


def foreground_fraction(pixels: np.ndarray) -> float:
    """Share of the frame that is not background: pixels [H, W] or [H, W, C] (uint8) whose value differs by more
    than FOREGROUND_TOLERANCE from the background, taken as the most common value on the image's border."""
    gray = pixels.astype(np.int16) if pixels.ndim == 2 else pixels.astype(np.int16).mean(axis=2).round()
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).astype(np.int64)
    background = int(np.bincount(border - border.min()).argmax() + border.min())
    return float((np.abs(gray - background) > FOREGROUND_TOLERANCE).mean())


def _load_png(path: Path) -> tuple[bytes, np.ndarray]:
    """Re-encode an image as 8-bit grayscale or RGB PNG bytes without metadata (text, EXIF, ICC, time).

    Returns (PNG bytes, pixels [H, W] or [H, W, 3] uint8)."""
    pixels = decode_image(path.read_bytes(), str(path))  # medgan's one reader: [H, W, C], DatasetError if bad
    pixels = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    return png_bytes(pixels), pixels


def _sample_unique(
    files: list[Path],
    folder: Path,
    count: int,
    rng: np.random.Generator,
    seen: set[str],
    label: str,
    failures: list,
    min_foreground: float = 0.0,
    skipped: list | None = None,
) -> list[tuple[str, bytes]]:
    """`count` images of `files` in a seeded random order, skipping any whose pixels were already taken and any
    whose foreground fraction is below `min_foreground` (their paths are appended to `skipped`).

    Returns [(relative path, PNG bytes)]; unreadable files are recorded in `failures` and replaced by the next.
    """
    skipped = [] if skipped is None else skipped
    taken: list[tuple[str, bytes]] = []
    order = rng.permutation(len(files))
    with tqdm(total=count, desc=f"sampling {label}", unit="img", leave=False) as progress:
        for index in order:
            if len(taken) == count:
                break
            path = files[int(index)]
            try:
                png, pixels = _load_png(path)
            except (OSError, ValueError) as exc:
                failures.append(f"{path}: {exc}")
                continue
            if min_foreground > 0 and foreground_fraction(pixels) < min_foreground:
                skipped.append(path)
                continue
            digest = hashlib.sha256(png).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            taken.append((path.relative_to(folder).as_posix(), png))
            progress.update(1)
    if len(taken) < count:
        unreadable = "".join(f"\n  unreadable: {failure}" for failure in failures)
        empty = (
            f"; {len(skipped)} near-empty images skipped (foreground under {min_foreground:.0%} of the frame: "
            "lower --min-foreground to keep them)"
            if skipped
            else ""
        )
        raise TuringBuildError(
            f"{folder}: needs {count} distinct readable images for {label}, found {len(taken)} "
            f"(of {len(files)} files{empty}); add images or lower --n-real/--n-generated{unreadable}"
        )
    return taken


def _section_names(generated_dirs: list[Path]) -> list[str]:
    """The folder names of the generated sets, made unique ('exp', 'exp-2', ...)."""
    names: list[str] = []
    for folder in generated_dirs:
        base, name, k = folder.name or "generated", folder.name or "generated", 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def sample_test(
    real_dir: str | os.PathLike,
    generated_dirs: list[str | os.PathLike],
    n_real: int = 50,
    n_generated: int = 50,
    seed: int = 0,
    min_foreground: float = DEFAULT_MIN_FOREGROUND,
    skipped: list | None = None,
) -> tuple[list[SampledImage], list[str]]:
    """Sample and order the images of a test. Returns (images in presentation order, section names in order).

    min_foreground: real images whose foreground fraction (see `foreground_fraction`) is below it are passed
    over (0 keeps all); their paths are appended to `skipped`. Generated images are never filtered.
    """
    if not 0 <= min_foreground < 1:
        raise TuringBuildError(f"min_foreground must be a fraction in [0, 1), got {min_foreground}")
    real_dir = Path(real_dir)
    generated = [Path(d) for d in generated_dirs]
    if not generated:
        raise TuringBuildError("at least one --generated folder is needed")
    if n_real < 1 or n_generated < 1:
        raise TuringBuildError(f"n_real and n_generated must be positive, got {n_real} and {n_generated}")
    resolved = [real_dir.resolve()] + [d.resolve() for d in generated]
    if len(set(resolved)) != len(resolved):
        raise TuringBuildError("the same folder is given twice among --real and --generated; pass distinct folders")
    names = _section_names(generated)
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    failures: list[str] = []

    real_files = list_images(real_dir)
    generated_files = [list_images(d) for d in generated]
    for folder, files, need in [(real_dir, real_files, n_real * len(generated))] + [
        (d, f, n_generated) for d, f in zip(generated, generated_files)
    ]:
        if len(files) < need:
            raise TuringBuildError(
                f"{folder}: has {len(files)} images, the test needs {need}; add images or lower the counts"
            )
    real = _sample_unique(
        real_files, real_dir, n_real * len(generated), rng, seen, "real images", failures, min_foreground, skipped
    )
    sections: dict[str, list[tuple[str, str, bytes]]] = {}
    for k, (name, folder, files) in enumerate(zip(names, generated, generated_files)):
        fakes = _sample_unique(files, folder, n_generated, rng, seen, f"generated set {name!r}", failures)
        reals = real[k * n_real : (k + 1) * n_real]
        sections[name] = [("real", f"{real_dir.name}/{rel}", png) for rel, png in reals]
        sections[name] += [("generated", f"{name}/{rel}", png) for rel, png in fakes]
    if failures:
        raise TuringBuildError("unreadable image files (fix or remove them):\n  " + "\n  ".join(failures))

    order = [names[int(i)] for i in rng.permutation(len(names))]
    used_ids: set[str] = set()
    images: list[SampledImage] = []
    for name in order:
        entries = sections[name]
        for i in rng.permutation(len(entries)):
            truth, source, png = entries[int(i)]
            image_id = f"img-{int(rng.integers(0, 16**6)):06x}"
            while image_id in used_ids:
                image_id = f"img-{int(rng.integers(0, 16**6)):06x}"
            used_ids.add(image_id)
            images.append(SampledImage(image_id, truth, name, source, png))
    return images, order


def render_html(
    images: list[SampledImage],
    sections: list[str],
    title: str,
    likert: bool,
    test_id: str,
    shuffle_per_rater: bool = False,
) -> str:
    """The self-contained HTML test; the HTML carries ids, section numbers and pixels, never truths or sources."""
    number = {name: str(k + 1) for k, name in enumerate(sections)}
    data = {
        "title": title,
        "test_id": test_id,
        "likert": likert,
        "order": "shuffled" if shuffle_per_rater else "fixed",
        "n_sections": len(sections),
        "items": [
            {
                "id": image.image_id,
                "section": number[image.section],
                "src": "data:image/png;base64," + base64.b64encode(image.png).decode("ascii"),
            }
            for image in images
        ],
    }
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")  # safe inside <script>
    template = resources.files("medgan_core.turing").joinpath("template.html").read_text(encoding="utf-8")
    page = template.replace("<title>Visual Turing test</title>", f"<title>{html.escape(title)}</title>", 1)
    # the title and the count read without JavaScript too (beside the <noscript> text)
    page = page.replace('<h1 id="title">Visual Turing test</h1>', f'<h1 id="title">{html.escape(title)}</h1>', 1)
    page = page.replace("__N_IMAGES__", str(len(images)))
    return page.replace(_DATA_TOKEN, payload, 1)


def key_csv(images: list[SampledImage], sections: list[str], test_id: str) -> str:
    """The answer key: image, truth, section (generated-set name), section_number (as shown), source, test_id."""
    number = {name: k + 1 for k, name in enumerate(sections)}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "truth", "section", "section_number", "source", "test_id"])
    for image in images:
        writer.writerow([image.image_id, image.truth, image.section, number[image.section], image.source, test_id])
    return buffer.getvalue()


def build_turing_test(
    real_dir: str | os.PathLike,
    generated_dirs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    n_real: int = 50,
    n_generated: int = 50,
    seed: int = 0,
    title: str = "Visual Turing test",
    likert: bool = True,
    shuffle_per_rater: bool = False,
    min_foreground: float = DEFAULT_MIN_FOREGROUND,
) -> TuringTest:
    """Sample a test from `real_dir` and `generated_dirs` and write `turing_test.html` and `answer_key.csv`.

    n_real, n_generated: images per section (n_real real images per generated set; no real image reused).
    likert: ask for a 1-5 score (1 = fake, 5 = real) besides real/fake.
    shuffle_per_rater: the page draws a seeded order per rater (kept in sections) instead of the key's order.
    min_foreground: skip real images whose foreground fraction is below this (0 keeps all).
    Both files are written atomically.
    """
    skipped: list[Path] = []
    images, sections = sample_test(real_dir, generated_dirs, n_real, n_generated, seed, min_foreground, skipped)
    fingerprint = hashlib.sha256()
    for image in images:
        fingerprint.update(image.image_id.encode() + hashlib.sha256(image.png).digest())
    fingerprint.update(json.dumps([title, likert, shuffle_per_rater]).encode("utf-8"))
    test_id = fingerprint.hexdigest()[:12]  # distinct tests keep distinct browser storage

    out_dir = Path(out_dir)
    html_path, key_path = out_dir / HTML_NAME, out_dir / KEY_NAME
    page = render_html(images, sections, title, likert, test_id, shuffle_per_rater)
    with atomic_write(key_path) as f:
        f.write(key_csv(images, sections, test_id).encode("utf-8"))
    with atomic_write(html_path) as f:
        f.write(page.encode("utf-8"))
    return TuringTest(html_path, key_path, test_id, sections, len(images), len(skipped), min_foreground)

"""Building tests: determinism, sampling without duplicates, a blind HTML file, a separate key, clear errors."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medgan_core.turing import TuringBuildError, build_turing_test

DATA_RE = re.compile(r'<script type="application/json" id="test-data">(.*?)</script>', re.S)


def read_test(test):
    html = test.html_path.read_text(encoding="utf-8")
    data = json.loads(DATA_RE.search(html).group(1))
    key = pd.read_csv(test.key_path, dtype=str)
    return html, data, key


def decode(src: str) -> tuple[bytes, np.ndarray]:
    raw = base64.b64decode(src.split(",", 1)[1])
    with Image.open(io.BytesIO(raw)) as image:
        return raw, np.asarray(image)


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path, image_dirs):
    args = (image_dirs["real"], [image_dirs["exp_a"], image_dirs["exp_b"]])
    a = build_turing_test(*args, tmp_path / "a", n_real=5, n_generated=6, seed=7)
    b = build_turing_test(*args, tmp_path / "b", n_real=5, n_generated=6, seed=7)
    c = build_turing_test(*args, tmp_path / "c", n_real=5, n_generated=6, seed=8)
    assert a.html_path.read_bytes() == b.html_path.read_bytes()
    assert a.key_path.read_bytes() == b.key_path.read_bytes()
    assert a.key_path.read_bytes() != c.key_path.read_bytes()


def test_multi_model_sections_counts_and_no_repeats(tmp_path, image_dirs):
    test = build_turing_test(
        image_dirs["real"],
        [image_dirs["exp_a"], image_dirs["exp_b"]],
        tmp_path / "out",
        n_real=10,
        n_generated=12,
        seed=3,
    )
    html, data, key = read_test(test)
    assert test.n_images == len(key) == len(data["items"]) == 44
    assert sorted(test.sections) == ["exp_a", "exp_b"]
    counts = key.groupby(["section", "truth"]).size().to_dict()
    assert counts == {
        ("exp_a", "generated"): 12,
        ("exp_a", "real"): 10,
        ("exp_b", "generated"): 12,
        ("exp_b", "real"): 10,
    }
    assert key.image.is_unique and key.source.is_unique  # no image twice, real images not reused across sections
    assert all(re.fullmatch(r"img-[0-9a-f]{6}", i) for i in key.image)
    # presentation: one section after the other, in the order reported; the key matches the page order
    assert [item["id"] for item in data["items"]] == key.image.tolist()
    shown = [item["section"] for item in data["items"]]
    assert shown == ["1"] * 22 + ["2"] * 22
    assert key.section_number.tolist() == shown
    assert key.drop_duplicates("section").section.tolist() == test.sections
    # the pixels are the sources' pixels, the PNG bytes carry no text chunk
    for item, source in zip(data["items"], key.source):
        raw, pixels = decode(item["src"])
        folder, name = source.split("/", 1)
        expected = np.asarray(Image.open(image_dirs[folder] / name))
        assert np.array_equal(pixels, expected)
        assert b"tEXt" not in raw and b"PatientName" not in raw


def test_html_is_blind_and_offline(tmp_path, image_dirs):
    test = build_turing_test(image_dirs["real"], [image_dirs["exp_a"]], tmp_path / "out", n_real=6, n_generated=6)
    html, data, key = read_test(test)
    assert test.key_path.parent == test.html_path.parent and test.key_path != test.html_path
    assert all(set(item) == {"id", "section", "src"} for item in data["items"])
    assert "generated" not in DATA_RE.search(html).group(1)
    for source in key.source:
        assert source.split("/")[-1] not in html
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)  # nothing fetched from a network
    assert "DOE^JANE" not in html


def test_duplicate_pixels_are_never_shown_twice(tmp_path, image_dirs):
    real = image_dirs["real"]
    for i in range(10):  # ten copies of one real image, one copy of a generated image among the real ones
        shutil.copy(real / "slice_000.png", real / f"copy_{i}.png")
    shutil.copy(image_dirs["exp_a"] / "seed_000.png", real / "leak.png")
    test = build_turing_test(real, [image_dirs["exp_a"]], tmp_path / "out", n_real=30, n_generated=11, seed=1)
    _, data, key = read_test(test)
    digests = [item["src"] for item in data["items"]]
    assert len(set(digests)) == len(digests) == 41


def test_errors_are_clear(tmp_path, image_dirs):
    with pytest.raises(TuringBuildError, match="needs 40"):
        build_turing_test(
            image_dirs["real"], [image_dirs["exp_a"], image_dirs["exp_b"]], tmp_path / "o", n_real=20, n_generated=5
        )
    with pytest.raises(TuringBuildError, match="same folder"):
        build_turing_test(
            image_dirs["real"], [image_dirs["exp_a"], image_dirs["exp_a"]], tmp_path / "o", n_real=2, n_generated=2
        )
    with pytest.raises(TuringBuildError, match="not found"):
        build_turing_test(tmp_path / "missing", [image_dirs["exp_a"]], tmp_path / "o", n_real=2, n_generated=2)
    for i in range(3):
        (image_dirs["exp_b"] / f"seed_{i:03d}.png").write_bytes(b"not a png")
    with pytest.raises(TuringBuildError, match=r"unreadable image files[\s\S]*seed_00[012].png"):
        build_turing_test(image_dirs["real"], [image_dirs["exp_b"]], tmp_path / "o", n_real=2, n_generated=9)
    with pytest.raises(TuringBuildError, match=r"needs 10 distinct readable[\s\S]*unreadable: .*seed_00[012].png"):
        build_turing_test(image_dirs["real"], [image_dirs["exp_b"]], tmp_path / "o", n_real=2, n_generated=10)
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_likert_can_be_left_out_and_title_is_escaped(tmp_path, image_dirs):
    test = build_turing_test(
        image_dirs["real"],
        [image_dirs["exp_a"]],
        tmp_path / "out",
        n_real=2,
        n_generated=2,
        title="<b>CT</b> & test",
        likert=False,
    )
    html, data, _ = read_test(test)
    assert data["likert"] is False and data["n_sections"] == 1
    assert "<title>&lt;b&gt;CT&lt;/b&gt; &amp; test</title>" in html
    assert data["title"] == "<b>CT</b> & test"  # set as text by the page's script, never as HTML


def write_square(path, size: int = 32, side: int = 0, background: int = 0, value: int = 200) -> None:
    """A size x size grayscale PNG: `background` with a side x side square of `value` in the middle."""
    pixels = np.full((size, size), background, dtype=np.uint8)
    start = (size - side) // 2
    pixels[start : start + side, start : start + side] = value
    Image.fromarray(pixels, mode="L").save(path)


def test_foreground_fraction_counts_pixels_away_from_the_border_value(tmp_path):
    from medgan_core.turing.build import foreground_fraction

    square = np.zeros((32, 32), np.uint8)
    square[8:16, 8:20] = 200
    assert foreground_fraction(square) == 96 / 1024
    assert foreground_fraction(255 - square) == 96 / 1024  # a white background is background too
    assert foreground_fraction(np.where(square > 0, 5, 0).astype(np.uint8)) == 0  # within 10 grey levels: noise
    assert foreground_fraction(np.stack([square] * 3, axis=2)) == 96 / 1024


def test_near_empty_real_images_are_never_drawn(tmp_path, image_dirs):
    real = tmp_path / "mixed_real"
    real.mkdir()
    for i in range(6):  # the top-of-head slices: a few bright pixels in a black frame (1.6% or 3.5% of it)
        write_square(real / f"empty_{i}.png", side=4 if i % 2 else 6, value=100 + i)
    for i in range(6):  # brains: a quarter of the frame or more
        write_square(real / f"brain_{i}.png", side=16 + i, value=150 + i)
    test = build_turing_test(real, [image_dirs["exp_a"]], tmp_path / "out", n_real=6, n_generated=3, seed=2)
    key = pd.read_csv(test.key_path, dtype=str)
    assert sorted(key.source[key.truth == "real"]) == [f"mixed_real/brain_{i}.png" for i in range(6)]
    assert 0 < test.n_skipped_empty <= 6 and test.min_foreground == 0.05  # those met before the 6th brain
    with pytest.raises(TuringBuildError, match=r"found 6 .*6 near-empty images skipped .*--min-foreground"):
        build_turing_test(real, [image_dirs["exp_a"]], tmp_path / "o2", n_real=7, n_generated=3, seed=2)
    kept = build_turing_test(
        real, [image_dirs["exp_a"]], tmp_path / "o3", n_real=9, n_generated=3, seed=2, min_foreground=0.02
    )  # keeps the 6 x 6 squares (3.5% of the frame), not the 4 x 4 ones (1.6%)
    sources = pd.read_csv(kept.key_path, dtype=str).source
    assert sorted(sources[sources.str.contains("empty_")]) == [f"mixed_real/empty_{i}.png" for i in (0, 2, 4)]
    assert (
        build_turing_test(real, [image_dirs["exp_a"]], tmp_path / "o4", 12, 3, min_foreground=0).n_skipped_empty == 0
    )


def test_the_key_carries_the_test_id_and_options_change_it(tmp_path, image_dirs):
    args = (image_dirs["real"], [image_dirs["exp_a"]])
    fixed = build_turing_test(*args, tmp_path / "a", n_real=2, n_generated=2)
    shuffled = build_turing_test(*args, tmp_path / "b", n_real=2, n_generated=2, shuffle_per_rater=True)
    key = pd.read_csv(fixed.key_path, dtype=str)
    assert list(key.columns) == ["image", "truth", "section", "section_number", "source", "test_id"]
    assert set(key.test_id) == {fixed.test_id} and fixed.test_id != shuffled.test_id
    assert read_test(fixed)[1]["order"] == "fixed" and read_test(shuffled)[1]["order"] == "shuffled"

"""Reruns of `medgan prep` leave exactly the current outputs (issue 15, item 2): changed inputs or settings are
remade, removed sources and damaged PNGs do not survive, recipes do not mix, killed runs leave no temporaries."""

import fcntl
import hashlib

import numpy as np
import pytest
from PIL import Image

from medgan_core.data import phantoms
from medgan_core.data.packaging import make_dataset_zip
from medgan_core.data.pipeline import INDEX_NAME, LOCK_NAME, read_index, run_prep
from medgan_core.data.recipes import Recipe, load_manifest


def _folder(out):
    """{file name: bytes} of every file in `out`, the index included."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _pngs(out):
    return sorted(p.name for p in out.glob("*.png"))


def _assert_index_matches_folder(out):
    rows = read_index(out)
    assert sorted(r["output"] for r in rows) == _pngs(out)
    for row in rows:
        assert hashlib.sha256((out / row["output"]).read_bytes()).hexdigest() == row["png_sha256"]


def test_a_fixed_mask_is_noticed_and_its_scan_remade(tmp_path):
    truth = phantoms.write_liver_ct_phantom(tmp_path / "src", cases=2, dicom_case=False)
    recipe, out = Recipe.from_name("liver-ct"), tmp_path / "out"
    first = run_prep(recipe, tmp_path / "src", out, progress=False)
    mask = truth["images/case01.nii.gz"].copy()
    liver_slices = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    mask[liver_slices[:2]] = 0  # the "fixed" mask: two fewer liver slices
    phantoms.write_nifti_ras(tmp_path / "src" / "masks" / "case01.nii.gz", mask)

    second = run_prep(recipe, tmp_path / "src", out, progress=False)
    assert second.made == len(liver_slices) - 2 and second.reused == first.made - len(liver_slices)
    assert second.removed == len(liver_slices)  # the old slices of case01 went before the new ones came
    run_prep(recipe, tmp_path / "src", tmp_path / "fresh", progress=False)
    assert _folder(out) == _folder(tmp_path / "fresh")  # the same as a run from scratch, byte for byte


def test_changed_recipe_settings_remake_every_slice(tmp_path):
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    out = tmp_path / "out"
    first = run_prep(Recipe.from_name("sliver07"), tmp_path / "src", out, progress=False)
    manifest = load_manifest("sliver07")
    manifest["preprocessing"]["intensity"] = {"method": "window", "level": 40, "width": 400}
    second = run_prep(Recipe(manifest), tmp_path / "src", out, progress=False)
    assert second.made == first.made and second.reused == 0
    run_prep(Recipe(manifest), tmp_path / "src", tmp_path / "fresh", progress=False)
    assert _folder(out) == _folder(tmp_path / "fresh")


def test_a_removed_source_leaves_no_pngs_for_the_dataset_zip(tmp_path):
    truth = phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    recipe, out = Recipe.from_name("sliver07"), tmp_path / "out"
    run_prep(recipe, tmp_path / "src", out, progress=False)
    for suffix in (".mhd", ".raw"):
        (tmp_path / "src" / f"liver-orig002{suffix}").unlink()
    second = run_prep(recipe, tmp_path / "src", out, progress=False)
    one_case = truth["liver-orig001.mhd"].shape[0]
    assert second.sources == 1 and second.reused == one_case and second.removed == one_case
    assert len(_pngs(out)) == one_case
    _assert_index_matches_folder(out)
    info = make_dataset_zip(out, tmp_path / "data.zip")
    assert info["images"] == one_case


def test_a_truncated_png_is_remade(tmp_path):
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    recipe, out = Recipe.from_name("sliver07"), tmp_path / "out"
    first = run_prep(recipe, tmp_path / "src", out, progress=False)
    before = _folder(out)
    victim = out / read_index(out)[3]["output"]
    victim.write_bytes(victim.read_bytes()[:200])  # the header survives, the pixels do not
    with pytest.raises(OSError):
        Image.open(victim).load()
    second = run_prep(recipe, tmp_path / "src", out, progress=False)
    assert second.made == first.made // 2 and second.reused == first.made // 2
    assert _folder(out) == before


def test_a_second_recipe_in_the_same_folder_is_refused_and_the_first_kept(tmp_path):
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=1)
    out = tmp_path / "out"
    run_prep(Recipe.from_name("sliver07"), tmp_path / "src", out, progress=False)
    before = _folder(out)
    with pytest.raises(ValueError, match=r"recipe sliver07 .*give mni-brain its own --out"):
        run_prep(Recipe.from_name("mni-brain"), None, out, progress=False)
    assert _folder(out) == before


def test_temporaries_of_a_killed_run_are_cleaned_and_a_running_one_is_not_disturbed(tmp_path):
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=1)
    recipe, out = Recipe.from_name("sliver07"), tmp_path / "out"
    run_prep(recipe, tmp_path / "src", out, workers=2, progress=False)
    # what kill -9 leaves: atomic_write's hidden temporaries (a PNG and the index) and the lock file
    leftovers = [".0123abcd4567_s0003.png.k2j3h4.tmp", f".{INDEX_NAME}.x8y9z0.tmp", LOCK_NAME]
    for name in leftovers:
        (out / name).write_bytes(b"partial")
    (out / "notes.tmp").write_text("not ours: kept")
    report = run_prep(recipe, tmp_path / "src", out, workers=2, progress=False)
    assert report.made == 0 and not report.failures
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert (out / "notes.tmp").is_file()
    with open(out / LOCK_NAME, "w") as lock:  # another prep still writing here: refused, nothing touched
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (out / leftovers[0]).write_bytes(b"in progress")
        with pytest.raises(ValueError, match="another medgan prep"):
            run_prep(recipe, tmp_path / "src", out, progress=False)
        assert (out / leftovers[0]).is_file()


def test_an_index_from_before_keyed_names_is_replaced(tmp_path):
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=1)
    out = tmp_path / "out"
    out.mkdir()
    old_png = out / "3f2a9c1b_s0000.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(old_png)
    (out / INDEX_NAME).write_text(
        "source_hash,frame,slice,output,recipe\n3f2a9c1b,,0,3f2a9c1b_s0000.png,sliver07\n", encoding="utf-8"
    )
    report = run_prep(Recipe.from_name("sliver07"), tmp_path / "src", out, progress=False)
    assert report.removed == 1 and not old_png.exists() and report.made == len(_pngs(out))
    _assert_index_matches_folder(out)


KILLED_RUN = """
import os, signal, sys
from medgan_core.data import pipeline
from medgan_core.data.recipes import Recipe
from medgan_core.utils.io import atomic_write, png_bytes

def dying_write(render, path):  # the 5th PNG: half written to its temporary name, then kill -9
    dying_write.calls += 1
    if dying_write.calls < 5:
        return real_write(render, path)
    with atomic_write(path, durable=False) as f:
        f.write(png_bytes(render())[:100])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

dying_write.calls, real_write = 0, pipeline._write_png
pipeline._write_png = dying_write
pipeline.run_prep(Recipe.from_name("sliver07"), sys.argv[1], sys.argv[2], workers=2, progress=False)
"""


def test_a_run_killed_mid_write_is_cleaned_up_by_the_next(tmp_path):
    import signal
    import subprocess
    import sys

    truth = phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    out = tmp_path / "out"
    args = [sys.executable, "-c", KILLED_RUN, str(tmp_path / "src"), str(out)]
    killed = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert any(p.name.endswith(".tmp") for p in out.iterdir())  # what the killed run left behind
    report = run_prep(Recipe.from_name("sliver07"), tmp_path / "src", out, workers=2, progress=False)
    assert not report.failures and [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    _assert_index_matches_folder(out)
    assert report.total == len(_pngs(out)) == sum(volume.shape[0] for volume in truth.values())


def test_an_interrupted_rerun_keeps_index_and_folder_in_step(tmp_path, monkeypatch):
    truth = phantoms.write_sliver07_phantom(tmp_path / "src", cases=3)
    recipe, out = Recipe.from_name("sliver07"), tmp_path / "out"
    run_prep(recipe, tmp_path / "src", out, progress=False)
    complete = _folder(out)
    victim = out / read_index(out)[0]["output"]  # a slice of the first source: that source must be remade
    victim.write_bytes(victim.read_bytes()[:100])

    def interrupted(item):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(Recipe, "plan", lambda self, item: interrupted(item))
        run_prep(recipe, tmp_path / "src", out, progress=False)
    _assert_index_matches_folder(out)  # the first source's slices are gone, the other two still listed
    per_case = next(iter(truth.values())).shape[0]
    assert len(read_index(out)) == 2 * per_case and not any(p.name.startswith(".") for p in out.iterdir())
    report = run_prep(recipe, tmp_path / "src", out, progress=False)
    assert report.made == per_case and report.reused == 2 * per_case
    assert _folder(out) == complete


def test_a_changed_data_file_behind_a_header_is_noticed(tmp_path):
    """MetaImage keeps its voxels in a .raw beside the .mhd header: a change there counts as a changed input."""
    truth = phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    recipe, out = Recipe.from_name("sliver07"), tmp_path / "out"
    run_prep(recipe, tmp_path / "src", out, progress=False)
    hu = truth["liver-orig002.mhd"].copy()
    hu[hu.shape[0] // 2] += 100  # one slice brighter, same file size
    phantoms.write_metaimage_lpi(tmp_path / "src" / "liver-orig002.mhd", hu)
    report = run_prep(recipe, tmp_path / "src", out, progress=False)
    assert report.made == hu.shape[0] and report.reused == truth["liver-orig001.mhd"].shape[0]
    run_prep(recipe, tmp_path / "src", tmp_path / "fresh", progress=False)
    assert _folder(out) == _folder(tmp_path / "fresh")

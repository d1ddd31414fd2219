"""Each recipe on small inputs in its real format: counts, orientation, intensities, padding, masks."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from medgan_core.data import phantoms
from medgan_core.data.embedded import mni152_t1_path, pydicom_file
from medgan_core.data.pipeline import read_index, run_prep
from medgan_core.data.recipes import Recipe, available_recipes, load_manifest

# the paper's figures (../shared/PAPER.md, "Datasets and preprocessing"), typed in independently of the manifests
PAPER_COUNTS = {"liver-ct": 10600, "sliver07": 4159, "chestxray14": 112120, "acdc": 1902, "msd-brain": 103030}
PAPER_SIZES = {"liver-ct": 512, "sliver07": 512, "chestxray14": 1024, "acdc": 512, "msd-brain": 256}


def _png(path):
    return np.asarray(Image.open(path))


def _run(name, src, out, **kwargs):
    report = run_prep(Recipe.from_name(name), src, out, progress=False, **kwargs)
    assert not report.failures, report.summary()
    return report, read_index(out)


def test_manifests_state_source_licence_layout_and_the_papers_numbers():
    assert {"liver-ct", "sliver07", "chestxray14", "acdc", "msd-brain", "mni-brain", "pydicom-samples"} <= set(
        available_recipes()
    )
    for name, count in PAPER_COUNTS.items():
        manifest = load_manifest(name)
        assert manifest["paper"]["output_count"] == count
        assert manifest["preprocessing"]["size"] == PAPER_SIZES[name]
        assert manifest["source"]["licence"] and manifest["source"]["citation"] and manifest["input_layout"]
        assert name == "liver-ct" or manifest["source"]["url"].startswith("http")
    assert load_manifest("liver-ct")["paper"]["extra_output_count"] == 143345
    assert load_manifest("liver-ct")["preprocessing"]["intensity"] == {"method": "window", "level": 50, "width": 350}
    assert load_manifest("msd-brain")["preprocessing"]["channel"] == 2  # T1-Gd in FLAIR, T1w, T1-Gd, T2w
    assert "8-bit mapping" in load_manifest("sliver07")["notes"]


def test_liver_ct_keeps_liver_slices_windowed_and_padded(tmp_path):
    truth = phantoms.write_liver_ct_phantom(tmp_path / "src", cases=2)  # one NIfTI case, one DICOM series case
    report, rows = _run("liver-ct", tmp_path / "src", tmp_path / "out")
    expected = sum(int(mask.reshape(mask.shape[0], -1).any(axis=1).sum()) for mask in truth.values())
    assert report.made == expected == len(rows) and expected < 2 * phantoms.SHAPE_DEFAULT[0]
    image = _png(tmp_path / "out" / rows[0]["output"])
    assert image.shape == (512, 512) and image.dtype == np.uint8
    ny, nx = phantoms.SHAPE_DEFAULT[1:]
    top, left = (512 - ny) // 2, (512 - nx) // 2
    assert not image[:top].any() and not image[:, :left].any() and not image[top + ny :].any()
    content = image[top : top + ny, left : left + nx]
    liver_value = int(np.floor((60 + 125) / 350 * 255 + 0.5))  # 60 HU through level 50 / width 350
    liver_pixels = np.argwhere(content == liver_value)
    assert liver_pixels.size and liver_pixels[:, 1].mean() < nx / 2  # patient's right on the viewer's left
    assert (content == 0).any()  # air (-1000 HU) below the window


def test_sliver07_every_slice_with_marker_top_right(tmp_path):
    truth = phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    report, rows = _run("sliver07", tmp_path / "src", tmp_path / "out")
    assert report.made == sum(v.shape[0] for v in truth.values())
    nz = next(iter(truth.values())).shape[0]
    last = [r for r in rows if int(r["slice"]) == nz - 1][0]
    image = _png(tmp_path / "out" / last["output"])
    ys, xs = np.nonzero(image == 255)  # the marker is the volume maximum -> 255
    assert ys.size and ys.max() < 256 and xs.min() > 256
    first = _png(tmp_path / "out" / [r for r in rows if int(r["slice"]) == 0][0]["output"])
    assert not (first == 255).any()


def test_acdc_takes_end_diastole_and_end_systole_frames(tmp_path):
    truth = phantoms.write_acdc_phantom(tmp_path / "src", patients=2, frames=6, shape_zyx=(5, 40, 48))
    report, rows = _run("acdc", tmp_path / "src", tmp_path / "out")
    assert report.made == 2 * 2 * 5
    assert {int(r["frame"]) for r in rows} == {f - 1 for pair in truth.values() for f in pair}
    for row in rows[:5]:
        image = _png(tmp_path / "out" / row["output"])
        assert image.shape == (512, 512) and not image[:230].any()  # (512 - 40) / 2 = 236 rows of padding
    frame_max = {}
    for row in rows:
        key = (row["source_id"], row["frame"])
        frame_max[key] = max(frame_max.get(key, 0), int(_png(tmp_path / "out" / row["output"]).max()))
    assert set(frame_max.values()) == {255}  # each frame volume rescaled to 0..255 on its own
    top = [r for r in rows if int(r["slice"]) == 4][0]  # most superior slice of the stack holds the marker
    image = _png(tmp_path / "out" / top["output"])
    ys, xs = np.nonzero(image == image.max())
    assert ys.max() < 256 and xs.min() > 256  # anterior-left marker: top right, as in the other recipes


def test_msd_brain_uses_t1gd_drops_empty_slices_and_pads_to_256(tmp_path):
    truth = phantoms.write_msd_brain_phantom(tmp_path / "src", cases=2)
    report, rows = _run("msd-brain", tmp_path / "src", tmp_path / "out")
    expected = sum(int((t.reshape(t.shape[0], -1) > t.min()).any(axis=1).sum()) for t in truth.values())
    assert report.made == expected and report.sources == 2  # the '._' shadow file is not a source
    t1gd = next(iter(truth.values()))
    reference = sitk.GetArrayFromImage(
        sitk.RescaleIntensity(sitk.Cast(sitk.GetImageFromArray(t1gd), sitk.sitkFloat64), 0, 255)
    )
    row = [r for r in rows if r["source_id"] == rows[0]["source_id"]][1]
    image = _png(tmp_path / "out" / row["output"])
    ny, nx = t1gd.shape[1:]
    top, left = (256 - ny) // 2, (256 - nx) // 2
    expected_slice = np.floor(reference[int(row["slice"])] + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(image[top : top + ny, left : left + nx], expected_slice)


def test_chestxray14_verifies_1024_grayscale_and_names_offenders(tmp_path):
    names = phantoms.write_chestxray_phantom(tmp_path / "src", count=2)
    small = tmp_path / "src" / "images" / "00000099_000.png"
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(small)
    gray = np.asarray(Image.open(tmp_path / "src" / names[0]))
    Image.fromarray(np.dstack([gray] * 3 + [np.full_like(gray, 255)]), "RGBA").save(
        tmp_path / "src" / "images" / "00000100_000.png"
    )
    report = run_prep(Recipe.from_name("chestxray14"), tmp_path / "src", tmp_path / "out", progress=False)
    assert report.made == 3
    assert [failure.relative for failure in report.failures] == ["images/00000099_000.png"]
    assert "512x512, expected 1024x1024" in report.failures[0].text
    outputs = {r["source_id"]: _png(tmp_path / "out" / r["output"]) for r in read_index(tmp_path / "out")}
    assert sum(np.array_equal(o, gray) for o in outputs.values()) == 2  # original and RGBA copy, same pixels


def test_mni_brain_keeps_slices_with_brain_on_a_tenth_of_the_slice(tmp_path):
    volume = np.asarray(nib.load(mni152_t1_path()).dataobj)  # [x, y, z] RAS+, z axial (towards superior)
    assert np.all(np.diag(nib.load(mni152_t1_path()).affine)[:3] > 0)  # so RAS z is our canonical z
    brain_fraction = (volume > volume.min()).mean(axis=(0, 1))  # per axial slice
    kept = np.flatnonzero(brain_fraction >= 0.10)
    report, rows = _run("mni-brain", None, tmp_path / "out", workers=2)
    assert sorted(int(r["slice"]) for r in rows) == kept.tolist()
    assert report.made == len(kept) == report.expected and report.matches_expected
    assert report.dropped == volume.shape[2] - len(kept) == report.expected_dropped
    assert 153 not in kept and 40 in kept  # issue 12: slice 153 (a few hundred pixels of vertex) must go
    sizes = {_png(tmp_path / "out" / r["output"]).shape for r in rows}
    assert sizes == {(256, 256)}
    smallest = min(int((_png(tmp_path / "out" / r["output"]) > 0).sum()) for r in rows)
    assert smallest >= 0.10 * 197 * 233  # padding adds no brain: the stated threshold holds on the PNGs too
    assert "dropped: matches" in report.summary()


def test_pydicom_samples_through_their_transforms(tmp_path):
    report, rows = _run("pydicom-samples", None, tmp_path / "out")
    assert report.made == 3
    by_source = {r["source_id"]: _png(tmp_path / "out" / r["output"]) for r in rows}
    shapes = sorted(image.shape for image in by_source.values())
    assert shapes == [(64, 64), (128, 128), (1024, 1024)]
    import pydicom

    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    hu = np.frombuffer(ds.PixelData, dtype="<i2").reshape(128, 128).astype(np.float64) - 1024
    expected = np.floor(np.clip((hu + 125) / 350 * 255, 0, 255) + 0.5).astype(np.uint8)
    ct = [image for image in by_source.values() if image.shape == (128, 128)][0]
    np.testing.assert_array_equal(ct, expected)
    recipe = Recipe.from_name("pydicom-samples")
    rendered = recipe.render_all(recipe.discover(None)[0])  # in memory, as the book's notebooks use it
    assert len(rendered) == 1 and np.array_equal(rendered[0][2], ct)


@pytest.mark.parametrize("name", ["liver-ct", "sliver07", "acdc", "msd-brain", "chestxray14"])
def test_missing_source_folder_is_a_clear_error(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="not found|no inputs|expected a folder"):
        Recipe.from_name(name).discover(tmp_path / "nowhere")


@pytest.mark.parametrize("fmt", ["nifti", "dicom", "metaimage", "nifti-4d", "png"])
def test_marker_lands_top_right_in_the_png_for_every_format(tmp_path, fmt):
    src, hu = tmp_path / "src", phantoms.ct_phantom()[0]
    full_mask = np.ones_like(hu, dtype=np.uint8)  # liver everywhere, so the marker slices are kept
    if fmt in ("nifti", "dicom"):
        name, recipe = "case00", "liver-ct"
        if fmt == "nifti":
            phantoms.write_nifti_ras(src / "images" / f"{name}.nii.gz", hu)
        else:
            phantoms.write_dicom_series(src / "images" / name, hu)
        phantoms.write_nifti_ras(src / "masks" / f"{name}.nii.gz", full_mask)
    elif fmt == "metaimage":
        recipe = "sliver07"
        phantoms.write_metaimage_lpi(src / "liver-orig001.mhd", hu)
    elif fmt == "nifti-4d":
        recipe = "msd-brain"
        phantoms.write_msd_brain_phantom(src, cases=1)
    else:
        recipe = "chestxray14"
        phantoms.write_chestxray_phantom(src, count=1)
    _, rows = _run(recipe, src, tmp_path / "out")
    top = max(rows, key=lambda r: int(r["slice"]))
    image = _png(tmp_path / "out" / top["output"])
    ys, xs = np.nonzero(image == 255)
    half = image.shape[0] // 2
    assert ys.size and ys.max() < half and xs.min() > half, fmt

"""The prep runner: anonymous outputs, bad-input summary, atomic writes, reruns, worker-independent results."""

import logging
import zlib

import nibabel as nib
import numpy as np
import pytest

from medgan_core.data import phantoms
from medgan_core.data import pipeline as pipeline_module
from medgan_core.data.pipeline import INDEX_NAME, read_index, run_prep
from medgan_core.data.recipes import Recipe

SECRETS = ("Doe^Jane", "Doe", "Jane", "MRN0012345")


def _png_chunk_types(data: bytes) -> list[bytes]:
    pos, types = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk = data[pos + 4 : pos + 8]
        assert zlib.crc32(chunk + data[pos + 8 : pos + 8 + length]) == int.from_bytes(
            data[pos + 8 + length : pos + 12 + length], "big"
        )
        types.append(chunk)
        pos += 12 + length
    return types


def _leftovers(folder):
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_patient_identifiers_leave_no_trace(tmp_path, caplog, capsys):
    hu, mask = phantoms.ct_phantom()
    src = tmp_path / "src"
    phantoms.write_dicom_series(src / "images" / "scan01", hu, patient_name="Doe^Jane", patient_id="MRN0012345")
    phantoms.write_nifti_ras(src / "masks" / "scan01.nii.gz", mask)
    # a second series of the same patient without a mask: it fails, so the failure path is logged too
    phantoms.write_dicom_series(src / "images" / "scan02", hu, patient_name="Doe^Jane", patient_id="MRN0012345")
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        report = run_prep(Recipe.from_name("liver-ct"), src, out, progress=True)
    print(report.summary())
    assert report.made > 0 and len(report.failures) == 1
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err, report.summary(), (out / INDEX_NAME).read_text()]
    texts += [p.name for p in out.iterdir()]
    for secret in SECRETS:
        assert not any(secret in text for text in texts), secret
    for png in out.glob("*.png"):
        data = png.read_bytes()
        assert set(_png_chunk_types(data)) <= {b"IHDR", b"IDAT", b"IEND"}
        assert not any(secret.encode() in data for secret in SECRETS)


def _bad_inputs(src):
    hu, mask = phantoms.ct_phantom()
    images, masks = src / "images", src / "masks"
    phantoms.write_nifti_ras(images / "good.nii.gz", hu)
    phantoms.write_nifti_ras(masks / "good.nii.gz", mask)
    data = (images / "good.nii.gz").read_bytes()
    (images / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    phantoms.write_nifti_ras(masks / "truncated.nii.gz", mask)
    with_nan = hu.astype(np.float32)
    with_nan[3, 4, 5] = np.nan
    phantoms.write_nifti_ras(images / "nan.nii.gz", with_nan)
    phantoms.write_nifti_ras(masks / "nan.nii.gz", mask)
    nib.save(nib.Nifti1Image(hu[0].T.copy(), np.eye(4)), images / "flat.nii.gz")  # a 2-D image
    phantoms.write_nifti_ras(masks / "flat.nii.gz", mask)
    phantoms.write_nifti_ras(images / "nomask.nii.gz", hu)
    phantoms.write_nifti_ras(images / "mismatch.nii.gz", hu)
    phantoms.write_nifti_ras(masks / "mismatch.nii.gz", mask[:, :, :32])
    phantoms.write_nifti_ras(images / "shifted.nii.gz", hu)
    phantoms.write_nifti_ras(masks / "shifted.nii.gz", mask, origin_xyz=(0.0, 0.0, 0.0))
    return {
        "images/shifted.nii.gz": "grid",
        "images/truncated.nii.gz": "cannot read",
        "images/nan.nii.gz": "NaN",
        "images/flat.nii.gz": "3-D",
        "images/nomask.nii.gz": "no mask",
        "images/mismatch.nii.gz": "does not match",
    }


def test_bad_inputs_are_all_listed_and_the_rest_is_processed(tmp_path):
    expected = _bad_inputs(tmp_path / "src")
    out = tmp_path / "out"
    report = run_prep(Recipe.from_name("liver-ct"), tmp_path / "src", out, progress=False)
    failures = {failure.relative: failure.text for failure in report.failures}
    assert set(failures) == set(expected)
    report.show_paths = True
    for path, fragment in expected.items():
        assert fragment in failures[path], (path, failures[path])
        assert path in report.summary()
    good = {row["source_id"] for row in read_index(out)}
    assert len(good) == 1 and report.made == len(list(out.glob("*.png"))) > 0
    assert _leftovers(out) == []


def test_a_write_failure_removes_that_sources_pngs(tmp_path, monkeypatch):
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    real_write, calls = pipeline_module._write_png, {"n": 0}

    def flaky_write(render, path):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real_write(render, path)

    monkeypatch.setattr(pipeline_module, "_write_png", flaky_write)
    out = tmp_path / "out"
    report = run_prep(Recipe.from_name("sliver07"), tmp_path / "src", out, progress=False)
    assert [failure.relative for failure in report.failures] == ["liver-orig001.mhd"]
    assert "disk full" in report.failures[0].text
    hashes = {p.name.split("_")[0] for p in out.glob("*.png")}
    assert len(hashes) == 1 and report.made == len(list(out.glob("*.png")))
    assert _leftovers(out) == []


def test_rerun_skips_finished_sources_and_redoes_incomplete_ones(tmp_path):
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    recipe, out = Recipe.from_name("sliver07"), tmp_path / "out"
    first = run_prep(recipe, tmp_path / "src", out, progress=False)
    second = run_prep(recipe, tmp_path / "src", out, progress=False)
    assert second.made == 0 and second.reused == first.made
    victim = sorted(out.glob("*.png"))[0]
    victim.unlink()
    third = run_prep(recipe, tmp_path / "src", out, progress=False)
    assert third.made == first.made // 2 and victim.is_file()
    rows = read_index(out)
    assert len(rows) == first.made and all((out / row["output"]).is_file() for row in rows)


@pytest.mark.parametrize("name", ["msd-brain", "acdc"])
def test_outputs_do_not_depend_on_the_number_of_workers(tmp_path, name):
    writer = {"msd-brain": phantoms.write_msd_brain_phantom, "acdc": phantoms.write_acdc_phantom}[name]
    writer(tmp_path / "src")
    recipe = Recipe.from_name(name)
    run_prep(recipe, tmp_path / "src", tmp_path / "one", workers=1, progress=False)
    run_prep(recipe, tmp_path / "src", tmp_path / "three", workers=3, progress=False)
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    three = {p.name: p.read_bytes() for p in (tmp_path / "three").iterdir()}
    assert one == three and len(one) > 3


def test_odd_but_usable_inputs_are_notes_naming_the_file(tmp_path):
    """Issue 15.6: a README.txt in a DICOM series, a mask with no scan, a mask without liver: notes, not failures."""
    hu, mask = phantoms.ct_phantom()
    src = tmp_path / "src"
    phantoms.write_nifti_ras(src / "images" / "case00.nii.gz", hu)
    phantoms.write_nifti_ras(src / "masks" / "case00.nii.gz", mask)
    phantoms.write_nifti_ras(src / "images" / "case01.nii.gz", hu)
    phantoms.write_nifti_ras(src / "masks" / "case01.nii.gz", np.zeros_like(mask))  # no liver label
    phantoms.write_dicom_series(src / "images" / "case02", hu)
    (src / "images" / "case02" / "README.txt").write_text("series exported from the PACS")
    phantoms.write_nifti_ras(src / "masks" / "case02.nii.gz", mask)
    phantoms.write_nifti_ras(src / "masks" / "case03.nii.gz", mask)  # no scan of that name
    report = run_prep(Recipe.from_name("liver-ct"), src, tmp_path / "out", progress=False)
    liver_slices = int(mask.reshape(mask.shape[0], -1).any(axis=1).sum())
    assert not report.failures and report.made == 2 * liver_slices
    notes = "\n".join(note.shown(True) for note in report.notes)
    assert len(report.notes) == 3, notes
    assert "images/case02: skipped 1 non-DICOM file(s): README.txt" in notes
    assert "masks/case01.nii.gz: no voxel has label 1 or 2" in notes
    assert "masks/case03.nii.gz: mask without a scan" in notes
    assert f"{len(report.notes)} note(s):" in report.summary()

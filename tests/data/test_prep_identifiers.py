"""No source path reaches anything under --out or the default summary; names are keyed (issue 15, item 5)."""

import hashlib
import hmac
import logging
import os

import pytest

from medgan_core.data import phantoms
from medgan_core.data.pipeline import INDEX_NAME, read_index, run_prep
from medgan_core.data.recipes import Recipe

FOLDER = "DOE_JANE_MRN0042_followup"
IDENTIFIERS = ("DOE", "JANE", "MRN0042", "SMITH", "MRN0099")


def _everything_under(out):
    """Names and contents of every file under `out`, as text."""
    return [p.name for p in out.rglob("*")] + [p.read_bytes().decode("latin-1") for p in out.rglob("*")]


def _src_with_identifiers(src):
    hu, mask = phantoms.ct_phantom()
    phantoms.write_nifti_ras(src / "images" / "case00.nii.gz", hu)
    phantoms.write_nifti_ras(src / "masks" / "case00.nii.gz", mask)
    phantoms.write_dicom_series(src / "images" / FOLDER, hu)  # no mask: this source fails
    phantoms.write_nifti_ras(src / "masks" / "SMITH_JOHN_MRN0099.nii.gz", mask)  # a mask without its scan


def test_failures_and_notes_name_sources_by_anonymous_id_unless_asked(tmp_path, caplog, capsys):
    _src_with_identifiers(tmp_path / "src")
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        report = run_prep(Recipe.from_name("liver-ct"), tmp_path / "src", out, progress=True)
    assert report.made > 0 and len(report.failures) == 1 and len(report.notes) == 1
    summary = report.summary()
    captured = capsys.readouterr()
    for text in [summary, caplog.text, captured.out, captured.err, *_everything_under(out)]:
        assert not any(word in text for word in IDENTIFIERS), text[:300]
    failure = report.failures[0]
    assert failure.source_id in summary and "no mask" in summary and "--show-paths" in summary
    report.show_paths = True
    assert f"images/{FOLDER}" in report.summary() and "masks/SMITH_JOHN_MRN0099.nii.gz" in report.summary()


def test_names_are_an_hmac_of_the_relative_path_reproducible_with_the_key(tmp_path, monkeypatch, naming_key):
    phantoms.write_liver_ct_phantom(tmp_path / "src", cases=2)
    recipe = Recipe.from_name("liver-ct")
    run_prep(recipe, tmp_path / "src", tmp_path / "a", progress=False)
    run_prep(recipe, tmp_path / "src", tmp_path / "b", workers=2, progress=False)
    files_a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    assert files_a == {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}  # same key: same everything

    key = naming_key.read_bytes().strip()
    for relative in ("images/case00.nii.gz", "images/case01"):
        expected = hmac.new(key, b"source\0" + relative.encode(), hashlib.sha256).hexdigest()[:12]
        unsalted = hashlib.sha256(relative.encode()).hexdigest()
        assert any(name.startswith(expected + "_s") for name in files_a)
        assert not any(name.startswith(unsalted[:8]) for name in files_a)
    scan_sha = hashlib.sha256((tmp_path / "src" / "images" / "case00.nii.gz").read_bytes()).hexdigest()
    assert scan_sha not in (tmp_path / "a" / INDEX_NAME).read_text()  # the digest cannot test a known file

    other = tmp_path / "other.key"
    other.write_text("fedcba9876543210fedcba9876543210")
    run_prep(recipe, tmp_path / "src", tmp_path / "c", key_file=other, progress=False)
    names_c = {p.name for p in (tmp_path / "c").glob("*.png")}
    assert len(names_c) == len([n for n in files_a if n.endswith(".png")])
    assert not names_c & set(files_a)  # another key: no name in common


def test_without_a_key_one_is_made_in_the_config_folder_and_said_so(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDGAN_KEY_FILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=1)
    recipe, out = Recipe.from_name("sliver07"), tmp_path / "out"
    first = run_prep(recipe, tmp_path / "src", out, progress=False)
    key_path = tmp_path / "config" / "medgan" / "naming.key"
    assert key_path.is_file() and os.stat(key_path).st_mode & 0o077 == 0  # owner only
    assert str(key_path) in first.summary() and "Keep it" in first.summary()
    second = run_prep(recipe, tmp_path / "src", out, progress=False)
    assert second.key_message is None and second.made == 0 and second.reused == first.made

    with pytest.raises(ValueError, match="inside the output folder"):
        run_prep(recipe, tmp_path / "src", out, key_file=out / "my.key", progress=False)
    with pytest.raises(FileNotFoundError, match="nowhere.key"):
        run_prep(recipe, tmp_path / "src", out, key_file=tmp_path / "nowhere.key", progress=False)


def test_public_bundled_sources_need_no_key(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDGAN_KEY_FILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    report = run_prep(Recipe.from_name("pydicom-samples"), None, tmp_path / "out", progress=False)
    assert report.made == 3 and report.key_message is None and not (tmp_path / "config").exists()
    assert len({row["source_id"] for row in read_index(tmp_path / "out")}) == 3

"""`medgan prep` and `medgan dataset` through the click group."""

import zipfile

import pytest
from click.testing import CliRunner

from medgan_core.cli import main
from medgan_core.data import phantoms


@pytest.fixture(autouse=True)
def _naming_key_in_tmp(tmp_path, monkeypatch):
    """`medgan prep` would create a naming key in ~/.config: point $XDG_CONFIG_HOME at a temporary folder."""
    monkeypatch.delenv("MEDGAN_KEY_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_prep_mni_brain_reports_the_count_and_the_match(tmp_path):
    result = CliRunner().invoke(main, ["prep", "mni-brain", "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "123 slices" in result.output and "matches" in result.output and "66 dropped" in result.output
    result = CliRunner().invoke(
        main, ["dataset", "--source", str(tmp_path / "out"), "--dest", str(tmp_path / "d.zip"), "--resolution", "256"]
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "d.zip") as archive:
        assert len(archive.namelist()) == 124  # 123 images + dataset.json


def test_prep_exits_non_zero_and_lists_failures(tmp_path):
    truth = phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    (tmp_path / "src" / "liver-orig002.raw").write_bytes(b"\0" * 10)
    args = [
        "prep",
        "sliver07",
        "--src",
        str(tmp_path / "src"),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "2",
        "--no-progress",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "1 source(s) failed" in result.output and "liver-orig002" not in result.output
    assert "naming key" in result.output and str(tmp_path / "config") in result.output  # created, and said where
    result = CliRunner().invoke(main, args + ["--show-paths"])
    assert result.exit_code == 1
    assert "1 source(s) failed" in result.output and "liver-orig002.mhd" in result.output
    nz = next(iter(truth.values())).shape[0]
    assert f"{nz} slices from 2 sources" in result.output and "does NOT match" in result.output


def test_prep_limit_and_unknown_recipe(tmp_path):
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    args = ["prep", "sliver07", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--limit", "1"]
    result = CliRunner().invoke(main, args + ["--no-progress"])
    assert result.exit_code == 0 and "from 1 sources" in result.output
    result = CliRunner().invoke(main, ["prep", "nonsense", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "known recipes" in result.output and "liver-ct" in result.output
    assert "MEDGAN_MANIFESTS" in result.output


def test_dataset_names_the_offending_file(tmp_path):
    import numpy as np

    from medgan_core.utils.io import save_png

    save_png(np.zeros((8, 8), np.uint8), tmp_path / "png" / "a.png")
    save_png(np.zeros((8, 6), np.uint8), tmp_path / "png" / "b.png")
    result = CliRunner().invoke(
        main, ["dataset", "--source", str(tmp_path / "png"), "--dest", str(tmp_path / "d.zip")]
    )
    assert result.exit_code != 0 and "b.png" in result.output and "not square" in result.output


def test_dataset_names_every_undecodable_image_and_writes_nothing(tmp_path):
    import numpy as np

    from medgan_core.utils.io import save_png

    rng = np.random.default_rng(0)
    for i in range(3):
        save_png(rng.integers(0, 256, (16, 16), dtype=np.uint8), tmp_path / "png" / f"{i}.png")
    whole = (tmp_path / "png" / "0.png").read_bytes()
    (tmp_path / "png" / "1.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "png" / "2.png").write_bytes(whole[:-30])
    args = ["dataset", "--source", str(tmp_path / "png"), "--dest", str(tmp_path / "d.zip"), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "1.png: cannot decode" in result.output and "2.png: cannot decode" in result.output
    assert "/0.png" not in result.output  # the good image is not listed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["png"]  # no zip, no temporary file


def test_the_training_advice_for_a_48_pixel_set_works(tmp_path):
    """The error on 48x48 images names a `medgan dataset --resolution` command; that command makes a set that
    trains, and honours the source's dataset.json labels on the way."""
    import json

    import numpy as np
    import pytest

    from medgan_core.training.dataset import DatasetError, ImageFolderDataset
    from medgan_core.utils.io import save_png

    rng = np.random.default_rng(0)
    for i in range(4):
        save_png(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), tmp_path / "png" / f"{i}.png")
    (tmp_path / "png" / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", i % 2] for i in range(4)]}))
    with pytest.raises(DatasetError) as error:
        ImageFolderDataset(tmp_path / "png")
    advice = "medgan dataset --source DIR --dest OUT.zip --resolution 64"
    assert "side 48 is not a power of two" in str(error.value) and advice in str(error.value)
    command = advice.replace("DIR", str(tmp_path / "png")).replace("OUT.zip", str(tmp_path / "d.zip")).split()[1:]
    result = CliRunner().invoke(main, command + ["--no-progress"])
    assert result.exit_code == 0, result.output
    assert "4 images, 64x64, 3 channel(s), with labels, 4 resized (Lanczos)" in result.output
    dataset = ImageFolderDataset(tmp_path / "d.zip", use_labels=True)
    assert dataset.image_shape == [3, 64, 64] and dataset.label_dim == 2
    np.testing.assert_array_equal(dataset.get_label(3), [0, 1])


def test_prep_refuses_a_second_recipe_in_the_same_out(tmp_path):
    out = str(tmp_path / "out")
    result = CliRunner().invoke(main, ["prep", "pydicom-samples", "--out", out, "--no-progress"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["prep", "mni-brain", "--out", out, "--no-progress"])
    assert result.exit_code != 0 and "pydicom-samples" in result.output and "its own --out" in result.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 3  # the first recipe's slices are kept

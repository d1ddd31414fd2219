"""Each chapter runs under papermill with parameter overrides, and the overrides show in its output."""

from __future__ import annotations

import re

import nbformat
import pytest

from medgan_core.book.build import CHAPTERS, GENERATED, SMOKE_WORK, smoke_parameters


def outputs_text(notebook) -> str:
    """All text a notebook printed or returned (stream and text/plain outputs), in order."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(str(output.data.get("text/plain", "")))
            elif output.output_type == "error":
                parts.append(f"ERROR {output.ename}: {output.evalue}")
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_with_overrides_that_show_in_its_output(smoke_book, chapter):
    notebook = nbformat.read(smoke_book / GENERATED / f"{chapter}.ipynb", as_version=4)
    text = outputs_text(notebook)
    assert "ERROR" not in text, text[-3000:]
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    assert any("parameters" in t for t in tags), "the notebook needs one cell tagged 'parameters'"
    assert any("injected-parameters" in t for t in tags), "papermill did not inject the overrides"
    overrides = smoke_parameters(smoke_book / SMOKE_WORK)[chapter]
    for name, value in overrides.items():  # the parameters table's plain-text form: one `name = repr` line each
        assert f"\n{name} = {value!r}\n" in f"\n{text}\n", f"{chapter}: override {name}={value!r} not in the output"


def test_override_changes_what_the_chapters_compute(smoke_book):
    """Beyond the echo: the overridden resolution, seeds and test sizes change the chapters' results."""
    read = lambda name: outputs_text(nbformat.read(smoke_book / GENERATED / f"{name}.ipynb", as_version=4))  # noqa: E731
    from medgan_core.data.recipes import Recipe

    expected = Recipe.from_name("mni-brain").manifest["paper"]["output_count"]  # the manifest's own count
    assert re.search(rf"mni-brain: {expected} slices from 1 sources", read("01_data"))
    training = read("02_training")  # resolution=16: the run summary says so
    assert re.search(r"^resolution\s+16\s*$", training, re.MULTILINE), training[:3000]
    ablation = read("03_ablation")  # seeds=[0]: one run per experiment, four in all
    assert sorted(set(re.findall(r"exp\d-seed\d", ablation))) == [f"exp{k}-seed0" for k in (1, 2, 3, 4)]
    clinician = read("06_clinician_turing_test")  # n_real=6, n_generated=6
    assert re.search(r"generated\s+6\s*\n\s*real\s+6", clinician), clinician[-2000:]

"""The repository address comes from one place (_config.yml), and the intro's demo defaults from chapter 2's
parameters cell: both written into the configuration `medgan book build` hands to jupyter-book."""

from __future__ import annotations

import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from medgan_core.book import build


def test_repository_address_from_the_config_with_fallback_words(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "demo_defaults", lambda: "32 x 32 pixels")
    config = yaml.safe_load((build.REPO_ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == ""  # this checkout: no address
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    empty = yaml.safe_load(build.book_config(tmp_path).read_text())
    assert empty["parse"]["myst_substitutions"]["repository"] == build.REPOSITORY_FALLBACK
    assert empty["html"]["use_repository_button"] is False
    assert empty["parse"]["myst_substitutions"]["demo_defaults"] == "32 x 32 pixels"
    config["repository"]["url"] = "https://example.org/medgan"
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    given = yaml.safe_load(build.book_config(tmp_path).read_text())
    assert (
        given["parse"]["myst_substitutions"]["repository"]
        == "[https://example.org/medgan](https://example.org/medgan)"
    )
    assert given["html"]["use_repository_button"] is True


def test_demo_defaults_are_read_from_the_parameters_cell(tmp_path):
    cell = new_code_cell("# Parameters\nresolution, kimg, batch = 32, 140.0, 32\ncbase, cmax = 1024, 64\ndata = 'x'")
    cell.metadata["tags"] = ["parameters"]
    path = tmp_path / "02.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("resolution = 999"), cell]), path)
    assert build.demo_defaults(path) == "32 x 32 pixels, cbase 1024, cmax 64, batch 32, kimg 140"
    assert "{{" not in (build.REPO_ROOT / "book" / "intro.md").read_text().replace("{{ demo_defaults }}", "").replace(
        "{{ repository }}", ""
    )

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


def test_correlation_and_range_words_follow_the_numbers_both_ways():
    from types import SimpleNamespace

    from medgan_core.book.display import correlation_words, range_words
    from medgan_core.turing import paper_tables as paper
    from medgan_core.turing import pearson

    table1 = paper.PAPER_TABLE1
    crossing = correlation_words(pearson(table1["fid"], table1["fpr_mean"], confidence=0.90, alpha=0.10), "FID")
    assert "includes 0" in crossing and "not established" in crossing  # the paper's four models: CI [-1.00, 0.09]
    clear = SimpleNamespace(r=-0.99, n=10, p_value=0.001, confidence=0.9, ci_low=-1.0, ci_high=-0.9)
    assert "excludes 0: a negative correlation" in correlation_words(clear, "x")
    assert "runs below 1 and above 5" in range_words("generated", 0.86, 5.60, (1, 5))
    assert "lies within" in range_words("x", 1.5, 4.5, (1, 5))

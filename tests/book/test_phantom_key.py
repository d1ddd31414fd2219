"""The book's phantom runs never write a naming key into the reader's config folder, nor print its path."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from medgan_core.book import datasets  # noqa: E402


def test_phantom_chapter_keeps_its_key_beside_the_phantom(tmp_path, monkeypatch):
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("MEDGAN_KEY_FILE", raising=False)
    lines, figures, rows = datasets.phantom_and_samples(tmp_path / "work", n_samples=2)
    assert not config.exists()
    assert (tmp_path / "work" / "ct-phantom.naming.key").is_file()
    assert not any("naming key" in line for line in lines)
    assert rows[0]["matches"]

"""Every data test names outputs with its own naming key and never touches the user's config folder."""

import pytest


@pytest.fixture(autouse=True)
def naming_key(tmp_path_factory, monkeypatch):
    """A fixed test key in $MEDGAN_KEY_FILE; $XDG_CONFIG_HOME points at an empty temporary folder."""
    folder = tmp_path_factory.mktemp("key")
    path = folder / "naming.key"
    path.write_text("0123456789abcdef0123456789abcdef\n")
    monkeypatch.setenv("MEDGAN_KEY_FILE", str(path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder / "config"))
    return path

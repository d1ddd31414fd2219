"""The book built once per test session from smoke-executed chapters (papermill, tiny parameters)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medgan_core.book.build import build


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> Path:
    """Book root with every chapter executed under smoke parameters and the HTML built in _build/html."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    root = tmp_path_factory.mktemp("smoke-book")
    lines: list[str] = []
    build(smoke=True, out=root, html=True, log=lines.append)
    assert any("jupyter-book build" in line for line in lines), lines
    return root

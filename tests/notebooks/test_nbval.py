"""`pytest --nbval-lax` over every chapter notebook, with smoke parameters injected by papermill.

papermill (prepare_only) writes a copy of each notebook with the smoke parameters injected and nothing executed;
nbval then executes each copy and fails on any cell error. This test is how `python -m pytest` (the README's
test command) includes the nbval validation of all six notebooks.
"""

from __future__ import annotations

import os
import subprocess
import sys

import papermill
import pytest

from medgan_core.book.build import CHAPTERS, REPO_ROOT, smoke_parameters


@pytest.mark.slow
def test_nbval_lax_passes_on_every_chapter(tmp_path):
    params = smoke_parameters(tmp_path / "work")
    copies = []
    for chapter in CHAPTERS:
        target = tmp_path / f"{chapter}.ipynb"
        papermill.execute_notebook(
            str(REPO_ROOT / "notebooks" / f"{chapter}.ipynb"),
            str(target),
            parameters=params[chapter],
            prepare_only=True,
            kernel_name="python3",
        )
        copies.append(str(target))
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",  # this interpreter's kernel, whatever kernelspecs the machine has
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "-o",
            "timeout=600",
            "--rootdir",
            str(tmp_path),
            *copies,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "passed" in summary, summary

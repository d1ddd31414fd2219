"""Fréchet Radiomics Distance (FRD), an optional extra built on `frd-score` and pyradiomics.

Install: `pip install "medgan-core[frd]"`; pyradiomics' PyPI release builds only without build isolation, after
numpy: `pip install numpy && pip install --no-build-isolation pyradiomics==3.0.1 && pip install frd-score`.

`frd-score` (v1, its default) reports FRD = log(d_F^2), where d_F^2 is the Fréchet distance between Gaussian fits
of normalised radiomic features (first-order, shape and texture, on the original and filtered images). We return
both: `frd` as the package reports it and `frechet_distance` = exp(frd) = d_F^2, which is 0 for identical sets.
"""

from __future__ import annotations

import math
from pathlib import Path

INSTALL_HINT = (
    "the FRD extra is not installed: pip install numpy && pip install --no-build-isolation pyradiomics==3.0.1 "
    "&& pip install frd-score"
)


def frd_available() -> tuple[bool, str]:
    """Whether frd-score and pyradiomics import, and if not, what to install."""
    try:
        import frd_score  # noqa: F401
        import radiomics  # noqa: F401
    except Exception as exc:  # pyradiomics fails with ImportError or build-related errors
        return False, f"{INSTALL_HINT} ({type(exc).__name__}: {exc})"
    return True, ""


def compute_frd(path_a: str | Path, path_b: str | Path, num_workers: int = 1, resize: int | None = None) -> dict:
    """FRD between two folders of PNG images (frd-score v1). Returns {'frd', 'frechet_distance', 'version'}."""
    ok, reason = frd_available()
    if not ok:
        raise RuntimeError(reason)
    for path in (path_a, path_b):
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{path}: not a folder of PNG images")
    import logging

    from frd_score import compute_frd as _compute_frd

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    value = float(_compute_frd([str(path_a), str(path_b)], num_workers=num_workers, resize_size=resize))
    return {"frd": value, "frechet_distance": math.exp(value) if value != -math.inf else 0.0, "version": "v1"}

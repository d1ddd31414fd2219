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


def _frechet(a, b) -> float:
    """Squared Frechet distance between Gaussian fits of two feature arrays [N, F] (frd-score's implementation)."""
    import numpy as np
    from frd_score.frd import calculate_frechet_distance

    return float(calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def _v1_extractor():
    """frd-score v1's pyradiomics feature extractor for 2-D images, with its defaults (radiomics' log quiet)."""
    import logging

    from frd_score import frd as impl

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return impl.get_feature_extractor(frd_version="v1", features=None, image_dim=2, image_types=None, log_sigma=None,
                                      config_path=None, bin_width=None, normalize_scale=None,
                                      voxel_array_shift=None)  # fmt: skip


def folder_features(folder: str | Path, num_workers: int = 1):
    """frd-score v1's radiomic features of a folder of PNGs (sorted by name): (names, float64 [N, F]),
    diagnostics left out."""
    import contextlib
    import io

    import numpy as np
    from frd_score import frd as impl

    files = sorted(str(f) for f in Path(folder).glob("*.png"))
    with contextlib.redirect_stdout(io.StringIO()):
        features, dicts, _ = impl.compute_features(files, _v1_extractor(), num_workers=num_workers, frd_version="v1")
    keep = [i for i, k in enumerate(dicts[0]) if not k.startswith("diagnostics_")]
    names = list(dicts[0])
    return [names[i] for i in keep], np.asarray(features, dtype=np.float64)[:, keep]


def _normalised(real, generated):
    """Both feature arrays z-scored with the real set's mean and SD (frd-score v1), with the masks of features that
    are finite in both sets and of those that also vary over the real set (relative SD >= 1e-3)."""
    import numpy as np

    finite = np.isfinite(real).all(0) & np.isfinite(generated).all(0)
    mean, sd = real.mean(0), real.std(0)
    varies = finite & (sd > 1e-3 * np.maximum(1.0, np.abs(mean)))
    scale = np.where(sd > 0, sd, 1.0)
    return (real - mean) / scale, (generated - mean) / scale, finite, varies


def frd_values(real_dir: str | Path | None, generated_dir: str | Path, num_workers: int = 1, real_features=None):
    """FRD two ways from one feature extraction: {'frd': log d_F^2 over every finite feature (frd-score v1's value),
    'frechet_distance': that d_F^2, 'frd_varying': log d_F^2 over the features that vary over the real set,
    'features_varying': how many those are}. See `frd_breakdown` for why the second measures the anatomy.
    `real_features` ([N, F] from `folder_features`) stands in for `real_dir` when the reals' are already known."""
    ok, reason = frd_available()
    if not ok:
        raise RuntimeError(reason)
    real = folder_features(real_dir, num_workers)[1] if real_features is None else real_features
    generated = folder_features(generated_dir, num_workers)[1]
    z_real, z_generated, finite, varies = _normalised(real, generated)
    everything = _frechet(z_real[:, finite], z_generated[:, finite])
    anatomy = _frechet(z_real[:, varies], z_generated[:, varies])
    log = lambda d: math.log(d) if d > 0 else -math.inf  # noqa: E731
    return {"frd": log(everything), "frechet_distance": everything, "frd_varying": log(anatomy),
            "features_varying": int(varies.sum())}  # fmt: skip


def frd_breakdown(real_dir: str | Path, generated_dir: str | Path, top: int = 8, num_workers: int = 1):
    """Which radiomic features make up an FRD, and the FRD without features that are constant over the real set.

    frd-score v1 z-scores every feature with the mean and SD of the *real* set, so a generated mean k real SDs away
    adds k^2 to d_F^2. Features that do not vary over the real images (SD at rounding level, e.g. the mean of an
    image pyradiomics has already normalised, or a wavelet median that is 0 on every real slice's background) then
    dominate d_F^2 by many orders of magnitude. Returns (summary, table): the summary gives log d_F^2 with all
    finite features (as frd-score) and without those constant over the real set (relative SD < 1e-3); the table
    lists the `top` features by their own 1-D Frechet distance (mean shift^2 + SD difference^2, in real SDs).
    """
    ok, reason = frd_available()
    if not ok:
        raise RuntimeError(reason)
    import numpy as np
    import pandas as pd

    names, real = folder_features(real_dir, num_workers)
    generated = folder_features(generated_dir, num_workers)[1]
    z_real, z_generated, finite, varies = _normalised(real, generated)
    everything = _frechet(z_real[:, finite], z_generated[:, finite])
    robust = _frechet(z_real[:, varies], z_generated[:, varies])
    shift = np.abs(z_generated.mean(0) - z_real.mean(0))
    spread = z_generated.std(0) / np.maximum(z_real.std(0), 1e-300)
    # each feature's own 1-D Frechet distance, (mu_g - mu_r)^2 + (sd_g - sd_r)^2: what it adds without covariances
    alone = np.where(finite, shift**2 + (z_generated.std(0) - z_real.std(0)) ** 2, 0.0)
    order = np.argsort(alone)[::-1][:top]
    table = pd.DataFrame(
        {
            "varies over reals": varies[order],
            "mean shift (real SDs)": [f"{v:.3g}" for v in shift[order]],
            "SD ratio": [f"{v:.3g}" for v in spread[order]],
            "share": (alone[order] / alone.sum()).round(3),  # of the sum of the features' 1-D distances
        },
        index=pd.Index([names[i] for i in order], name="feature"),
    )
    summary = pd.Series({
        "log d_F^2, all finite features (frd-score's FRD)": math.log(everything),
        "log d_F^2, features that vary over the real set": math.log(robust),
        "features: finite / varying over the real set": f"{int(finite.sum())} / {int(varies.sum())}",
    }, name="value")  # fmt: skip
    return summary, table


def frd_feature_count(size: int, seed: int = 0) -> int:
    """How many radiomic features frd-score v1 computes per `size` x `size` grayscale image (diagnostics left out):
    pyradiomics skips filters an image is too small for, so the count depends on the size. Counted on a seeded
    textured test image written to a temporary PNG."""
    ok, reason = frd_available()
    if not ok:
        raise RuntimeError(reason)
    import contextlib
    import io
    import tempfile

    import numpy as np
    from frd_score import frd as impl

    from medgan_core.utils.io import save_png

    extractor = _v1_extractor()
    image = np.random.default_rng(seed).integers(0, 256, size=(size, size), dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="medgan-frd-count-") as tmp:
        path = Path(tmp) / "image.png"
        save_png(image, path)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            _, dicts, _ = impl.compute_features([str(path)], extractor, num_workers=1, frd_version="v1")
    return sum(1 for key in dicts[0] if not key.startswith("diagnostics_"))

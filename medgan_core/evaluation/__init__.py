"""Evaluation beyond FID that needs no network weights: memorisation, MS-SSIM diversity and (optional) FRD.

- `memorization`: nearest training image of every generated image by normalised cross-correlation, calibrated
  against the same distance from held-out real images.
- `diversity`: mean pairwise MS-SSIM of generated images beside that of real images.
- `frd`: Fréchet Radiomics Distance through the optional `frd-score` package.
"""

from medgan_core.evaluation.diversity import DiversityResult, diversity_report, mean_pairwise_msssim
from medgan_core.evaluation.memorization import MemorizationResult, find_memorized, nearest_neighbours

__all__ = [
    "DiversityResult",
    "MemorizationResult",
    "diversity_report",
    "find_memorized",
    "mean_pairwise_msssim",
    "nearest_neighbours",
]

"""Mode collapse, measured: how varied generated images are against the real ones, and how many reals they reach.

A GAN in StyleGAN2's early collapse draws one image (or a few) for every latent; its pixel texture may still
change, so both measures work on coarse images (area-pooled to `POOLED_SIDE` x `POOLED_SIDE`, values in [0, 1]),
where the anatomy decides and the texture does not:

- `spread_ratio`: mean pairwise Euclidean distance between generated images / the same between real images.
  About 1 for a generator as varied as the data, near 0 for one image repeated.
- `coverage` (mode coverage): each generated image is given the real image nearest to it; the number of distinct
  real images so reached, divided by the number that as many images drawn at random from the reals reach on
  average (N (1 - (1 - 1/N)^M) for M generated and N real images). About 1 for a generator that draws like the
  data, m / that number for one that draws m distinct images: it counts modes, as the nearest-neighbour mode
  counts of the GAN literature do, and does not ask a generated image to be a near copy of a real one. (Naeem et
  al.'s k-NN coverage, tried first, asks exactly that: on one brain's 1 mm slices the 5th-nearest real slice is
  so close that varied generated slices at every height, 2.3 times that radius away, covered none of the reals.)
  The generated image may stand up to 1/16 of the image side off in x and y when it is matched (`shifted`), so a
  small registration error does not move it to another slice.

`collapse_report` also gives the mean pairwise MS-SSIM of both sets at full resolution (the paper's diversity
measure, `medgan_core.evaluation.diversity`) and the verdict `collapsed`: spread ratio below `COLLAPSE_SPREAD`
(one image for every latent) or coverage below `COLLAPSE_COVERAGE` (a few images for every latent: three real
slices repeated keep 0.9 of the reals' spread but reach under a tenth of the slices), either with the generated
images more alike by MS-SSIM than the reals are. Without that last condition pixel noise would count as collapse
(it pools to one flat grey); low spread or coverage with generated images less alike than the reals (an
untrained generator's noise) is what `state` calls "unlike the reals".
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from medgan_core.evaluation.diversity import mean_pairwise_msssim

POOLED_SIDE = 8  # images are compared as 8x8 area means (32x32 -> 4x4 blocks)
COLLAPSE_SPREAD = 0.4  # below this spread ratio the generated set counts as mode collapse
COLLAPSE_COVERAGE = 0.4  # ... and below this coverage too (fewer distinct images than 40% of a random draw's)


@dataclasses.dataclass
class CollapseReport:
    spread_ratio: float  # pooled mean pairwise distance, generated / real
    coverage: float  # distinct reals nearest to a generated image / the number a random draw of reals reaches
    msssim: float  # mean pairwise MS-SSIM among generated images (higher = less varied)
    msssim_real: float  # the same among real images
    num_generated: int
    num_real: int

    @property
    def state(self) -> str:
        """'collapse', 'unlike the reals' (varied, but near few real images) or 'varied'."""
        if self.spread_ratio >= COLLAPSE_SPREAD and self.coverage >= COLLAPSE_COVERAGE:
            return "varied"
        return "collapse" if self.msssim > self.msssim_real else "unlike the reals"

    @property
    def collapsed(self) -> bool:
        return self.state == "collapse"

    def summary(self) -> dict:
        return dict(dataclasses.asdict(self), collapsed=self.collapsed, state=self.state)

    def describe(self) -> str:
        """One sentence: the verdict and the numbers behind it."""
        numbers = (
            f"spread {self.spread_ratio:.2f} of the reals', coverage {self.coverage:.2f}, "
            f"MS-SSIM {self.msssim:.3f} vs {self.msssim_real:.3f} among reals"
        )
        if self.collapsed and self.spread_ratio < COLLAPSE_SPREAD:
            return f"mode collapse: the generated images vary far less than the real ones ({numbers})"
        if self.collapsed:
            return f"mode collapse: the generated images are a few images, nearest to few of the reals ({numbers})"
        if self.state == "unlike the reals":
            return f"no mode collapse, but the generated images look unlike the real ones ({numbers})"
        return f"no mode collapse ({numbers})"


def pooled(images: np.ndarray, side: int = POOLED_SIDE) -> torch.Tensor:
    """uint8 [N, H, W, C] -> float64 [N, side * side * C] in [0, 1] (area means over side x side blocks)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).double() / 255
    return F.adaptive_avg_pool2d(x, side).flatten(1)


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance over all pairs i < j of the rows of x [N, D]."""
    if len(x) < 2:
        raise ValueError("need at least two images to measure their spread")
    distances = torch.cdist(x, x)
    return float(distances.sum() / (len(x) * (len(x) - 1)))


def coverage(real: torch.Tensor, generated: torch.Tensor | list[torch.Tensor]) -> float:
    """Mode coverage of real [N, D] by generated [M, D]: the distinct reals that are the nearest real of some
    generated image, over N (1 - (1 - 1/N)^M), the mean number M random reals are nearest to (themselves). A list
    of generated sets (the same M images at several shifts) matches each image at its nearest shift."""
    sets = generated if isinstance(generated, list) else [generated]
    distances = torch.stack([torch.cdist(g, real) for g in sets]).min(dim=0).values  # [M, N], best shift
    reached = len(torch.unique(distances.argmin(dim=1)))
    expected = len(real) * (1 - (1 - 1 / len(real)) ** len(sets[0]))
    return reached / expected


def shifted(images: np.ndarray, max_shift: int) -> list[np.ndarray]:
    """The images moved by every (dy, dx) in [-max_shift, max_shift]^2 (edges repeated), uint8 [N, H, W, C] each."""
    height, width = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="edge")
    span = range(2 * max_shift + 1)
    return [padded[:, dy : dy + height, dx : dx + width] for dy in span for dx in span]


def collapse_report(generated: np.ndarray, real: np.ndarray, num_pairs: int = 500, seed: int = 0) -> CollapseReport:
    """Spread ratio, coverage and MS-SSIM of generated against real images (both uint8 [N, H, W, C])."""
    gen_pooled, real_pooled = pooled(generated), pooled(real)
    spread = mean_pairwise_distance(gen_pooled) / max(mean_pairwise_distance(real_pooled), 1e-12)
    max_shift = round(generated.shape[1] / 16)  # 2 pixels at 32x32, half a pooled block
    gen_shifted = [pooled(images) for images in shifted(generated, max_shift)]
    msssim_gen, _ = mean_pairwise_msssim(generated, num_pairs=num_pairs, seed=seed)
    msssim_real, _ = mean_pairwise_msssim(real, num_pairs=num_pairs, seed=seed)
    return CollapseReport(
        spread_ratio=spread,
        coverage=coverage(real_pooled, gen_shifted),
        msssim=msssim_gen,
        msssim_real=msssim_real,
        num_generated=len(generated),
        num_real=len(real),
    )

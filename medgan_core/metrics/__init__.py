"""FID and KID with the standard FID Inception-v3.

Modules: `inception` (the network, pytorch-fid parameter names), `weights` (finding/downloading weights),
`detector` (both weight formats behind one call; the formats' preprocessing differences are documented there),
`statistics` (streaming float64 mean/covariance), `fid`, `kid`, `images` (folder/zip reader), `features`
(extraction loops, multi-rank), `cache` (real-statistics cache), `runner` (registry, trainer hook).
"""

from medgan_core.metrics.fid import frechet_distance
from medgan_core.metrics.kid import kernel_inception_distance
from medgan_core.metrics.statistics import FeatureStats

__all__ = ["FeatureStats", "frechet_distance", "kernel_inception_distance"]

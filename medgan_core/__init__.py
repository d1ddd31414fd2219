"""medgan_core: StyleGAN2-ADA for medical images.

Networks with NVIDIA's parameter names, reference and fused ops, ADA, the multi-GPU trainer, FID/KID,
medical preprocessing and visual Turing-test statistics.
"""

__version__ = "0.1.0"

"""StyleGAN2-ADA training: dataset, options, distributed helpers, the loop, snapshots and statistics.

Entry points: `medgan train ...` (medgan_core.cli.train) and `torchrun ... -m medgan_core.train ...`, both built
on `medgan_core.training.options.training_options` and `medgan_core.training.launch.launch`.
"""

from medgan_core.training.dataset import DatasetError, ImageFolderDataset, InfiniteSampler
from medgan_core.training.options import TrainOptions, build_config

__all__ = ["DatasetError", "ImageFolderDataset", "InfiniteSampler", "TrainOptions", "build_config"]

"""StyleGAN2-ADA training: dataset, options, distributed helpers, the loop, snapshots and statistics.

Entry point: `medgan_core.train.train(**options)`, behind `medgan train`, `python -m medgan_core.train` and
`torchrun ... -m medgan_core.train`: options.py (TrainOptions -> training_loop's keyword arguments), launch.py
(run folder, ranks), loop.py (`training_loop(**kwargs)`).
"""

from medgan_core.training.dataset import DatasetError, ImageFolderDataset, InfiniteSampler
from medgan_core.training.options import TrainOptions, build_config

__all__ = ["DatasetError", "ImageFolderDataset", "InfiniteSampler", "TrainOptions", "build_config"]

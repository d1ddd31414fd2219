"""StyleGAN2 networks with NVIDIA's constructor arguments, calling conventions and state-dict names."""

from medgan_core.networks.discriminator import (
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    MinibatchStdLayer,
)
from medgan_core.networks.generator import Generator, SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer
from medgan_core.networks.layers import Conv2dLayer, FullyConnectedLayer, MappingNetwork, normalize_2nd_moment

__all__ = [
    "Conv2dLayer",
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "FullyConnectedLayer",
    "Generator",
    "MappingNetwork",
    "MinibatchStdLayer",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGBLayer",
    "normalize_2nd_moment",
]

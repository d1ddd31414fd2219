"""VGG16 features for improved precision and recall (Kynkäänniemi et al., NeurIPS 2019), NVIDIA's definition.

NVIDIA's `pr50k3_full` embeds images with `vgg16.pkl` / `vgg16.pt` called with `return_features=True`: the
4096-d output of VGG16's second fully connected layer after its ReLU ("fc2_relu"), Simonyan and Zisserman's
ImageNet network as released with torchvision (`vgg16-397923af.pth`). The input is prepared as that TorchScript
graph does (torch-fidelity's FeatureExtractorVGG16 reproduces it, and tests it against NVIDIA's file to 1e-4):

    uint8 [N, 1 or 3, H, W] -> float32 in 0..255 (grey repeated to RGB, as NVIDIA's metric_utils does)
    -> bilinear resize to 224 x 224 the way TensorFlow 1.x resizes (align_corners=False, *no* half-pixel
       offset: output pixel i samples input position i * H / 224, edges clamped)
    -> (x - 255 * mean) / (255 * std) with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)
    -> VGG16 convolutions, 7 x 7 average pool, fc1, ReLU, fc2, ReLU -> [N, 4096].

`VGG16` keeps torchvision's parameter names (`features.0.weight`, ..., `classifier.3.bias`), so its weight file
loads with `load_state_dict(strict=True)` using only PyTorch (torchvision is not needed). NVIDIA's TorchScript
file is accepted as well (`--vgg16 PATH`); weight resolution is as for Inception (weights.py).
"""

from __future__ import annotations

import torch
from torch import nn

from medgan_core.metrics.inception import rgb_uint8

VGG16_WEIGHTS_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
VGG16_SHA256_PREFIX = "397923af"  # torchvision names its files by the first hex digits of their SHA-256
NVIDIA_VGG16_URLS = (
    "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/vgg16.pkl",
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt",
)
FEATURE_DIM = 4096
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Convolution widths of configuration "D" (VGG16); "M" is a 2 x 2 max pool.
_CONFIG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def resize_bilinear_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """float [N, C, H, W] -> [N, C, size, size], TensorFlow 1.x bilinear (no half-pixel centres, edges clamped)."""

    def axis(in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position = torch.arange(size, dtype=torch.float32, device=x.device) * (in_size / size)
        low = position.long().clamp(max=in_size - 1)
        high = (low + 1).clamp(max=in_size - 1)
        return low, high, (position - low.to(torch.float32)).to(x.dtype)

    y_lo, y_hi, dy = axis(x.shape[2])
    x_lo, x_hi, dx = axis(x.shape[3])
    top, bottom = x[:, :, y_lo, :], x[:, :, y_hi, :]
    rows = top + (bottom - top) * dy.view(1, 1, -1, 1)  # [N, C, size, W]
    left, right = rows[:, :, :, x_lo], rows[:, :, :, x_hi]
    return left + (right - left) * dx.view(1, 1, 1, -1)


class VGG16(nn.Module):
    """VGG16 up to fc2 + ReLU: uint8 [N, 1 or 3, H, W] -> float32 [N, 4096] (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in _CONFIG_D:
            if width == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)  # -> [N, 512, 7, 7] at 224 x 224
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(  # torchvision's indices; dropout is the identity in eval mode
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(4096, 4096),
            nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(4096, 1000),
        )  # fmt: skip
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 1 or 3, H, W] -> normalised float32 [N, 3, 224, 224]."""
        x = rgb_uint8(images, "VGG16 features").to(torch.float32)
        x = resize_bilinear_tf1(x, INPUT_SIZE)
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(self.preprocess(images))).flatten(1)  # [N, 25088]
        for index in range(5):  # fc1, ReLU, dropout, fc2, ReLU
            x = self.classifier[index](x)
        return x  # [N, 4096]


def random_vgg16_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights in torchvision's layout (He-normal, small biases), for tests without the real file."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in VGG16().state_dict().items():
        if name.endswith("weight"):
            fan_in = tensor.shape[1:].numel()
            state[name] = torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5
        else:
            state[name] = 0.01 * torch.randn(tensor.shape, generator=generator)
    return state

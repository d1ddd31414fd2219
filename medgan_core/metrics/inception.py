"""The FID Inception-v3: TensorFlow's 2015-12-05 ImageNet graph as ported to PyTorch for FID.

Szegedy et al., "Rethinking the Inception Architecture for Computer Vision" (CVPR 2016), in the exact variant
that Heusel et al.'s FID code used (the `inception-2015-12-05.tgz` graph). It differs from torchvision's
Inception-v3 in three places, all reproduced here:

- the average-pooling branches of the 35x35, 17x17 and first 8x8 modules ignore padded zeros
  (`count_include_pad=False`, TensorFlow's behaviour);
- the pooling branch of the last 8x8 module uses max pooling instead of average pooling;
- the classifier has 1008 outputs (it is kept only so the weight file loads strictly; FID never uses it).

Parameter and buffer names equal those of pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`
(`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch_pool.bn.running_var`, ..., `fc.weight`), so that file loads
with `load_state_dict(strict=True)`. Only PyTorch is needed at run time.

Input preprocessing (pytorch-fid's, reproduced operation by operation so features agree to float32 rounding):
uint8 [N, C, H, W] -> float32 / 255 -> bilinear resize to 299 x 299 (`align_corners=False`, no antialiasing)
-> 2 x - 1, so the network sees values in [-1, 1]. One-channel images are repeated to three channels first,
as PIL's `convert('RGB')` does in pytorch-fid.

For speed, `fold_batchnorm()` folds each eval-mode batch normalisation into its convolution's weight and bias
(one convolution and one ReLU per layer instead of three passes); results differ from the unfolded network
only by float32 rounding (about 1e-6 relative).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
FEATURE_DIM = 2048  # pool3 features
INPUT_SIZE = 299  # pixels; the graph's input resolution


def rgb_uint8(images: torch.Tensor, who: str) -> torch.Tensor:
    """uint8 [N, 1 or 3, H, W] -> uint8 [N, 3, H, W] (grey repeated, as a view); `who` names the taker in errors."""
    if images.dtype != torch.uint8:
        raise TypeError(f"{who}: expected uint8 images, got {images.dtype}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{who}: expected images [N, 1 or 3, H, W], got shape {tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1)


class ConvBNReLU(nn.Module):
    """Convolution without bias -> batch normalisation (eps 1e-3, TensorFlow's) -> ReLU.

    Named `conv` and `bn` inside, as in the weight file. After `fold_batchnorm()` the forward pass is a single
    biased convolution followed by ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.folded = False

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Precompute conv weight * gamma / sqrt(var + eps) and bias beta - mean * gamma / sqrt(var + eps)."""
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)  # [out]
        weight = self.conv.weight * scale[:, None, None, None]
        bias = self.bn.bias - self.bn.running_mean * scale
        memory_format = (
            torch.channels_last
            if self.conv.weight.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        self.register_buffer("folded_weight", weight.contiguous(memory_format=memory_format), persistent=False)
        self.register_buffer("folded_bias", bias.contiguous(), persistent=False)
        self.folded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded:
            c = self.conv
            x = F.conv2d(x, self.folded_weight, self.folded_bias, c.stride, c.padding, c.dilation, c.groups)
            return F.relu_(x)
        return F.relu_(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pooling that, like TensorFlow's, averages only over the non-padded pixels."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 module (the paper's figure 5): 1x1, 5x5, double-3x3 and pooling branches concatenated."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = ConvBNReLU(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = ConvBNReLU(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = ConvBNReLU(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = ConvBNReLU(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = ConvBNReLU(96, 96, kernel_size=3, padding=1)
        self.branch_pool = ConvBNReLU(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, 35, 35] -> [N, 224 + pool_features, 35, 35]
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class GridReduction35(nn.Module):
    """35x35 -> 17x17 grid reduction (`Mixed_6a`): strided 3x3, strided double-3x3 and max-pool branches."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBNReLU(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = ConvBNReLU(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = ConvBNReLU(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = ConvBNReLU(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 288, 35, 35] -> [N, 768, 17, 17]
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], dim=1)


class InceptionC(nn.Module):
    """17x17 module with factorised 7x7 convolutions (1x7 then 7x1; the paper's figure 6)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBNReLU(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = ConvBNReLU(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = ConvBNReLU(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBNReLU(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBNReLU(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = ConvBNReLU(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBNReLU(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBNReLU(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBNReLU(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = ConvBNReLU(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 768, 17, 17] -> [N, 768, 17, 17]
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], dim=1)


class GridReduction17(nn.Module):
    """17x17 -> 8x8 grid reduction (`Mixed_7a`)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBNReLU(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = ConvBNReLU(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = ConvBNReLU(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = ConvBNReLU(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBNReLU(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBNReLU(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 768, 17, 17] -> [N, 1280, 8, 8]
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class InceptionE(nn.Module):
    """8x8 module with expanded filter banks (parallel 1x3 and 3x1; the paper's figure 7).

    pool: 'avg' (TensorFlow-style average, `Mixed_7b`) or 'max' (the FID graph's `Mixed_7c`).
    """

    def __init__(self, in_channels: int, pool: str = "avg") -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBNReLU(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = ConvBNReLU(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = ConvBNReLU(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBNReLU(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBNReLU(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = ConvBNReLU(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = ConvBNReLU(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBNReLU(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = ConvBNReLU(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, 8, 8] -> [N, 2048, 8, 8]
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], dim=1)
        pooled = _tf_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], dim=1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 up to its 2048-d pool3 features.

    forward(images): uint8 [N, 1 or 3, H, W] (any H, W) -> float32 features [N, 2048].
    Preprocessing is pytorch-fid's (see the module docstring); set `resize_input=False` only for inputs that are
    already 299 x 299.
    """

    def __init__(self, num_classes: int = 1008, resize_input: bool = True) -> None:
        super().__init__()
        self.resize_input = resize_input
        self.Conv2d_1a_3x3 = ConvBNReLU(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = ConvBNReLU(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = ConvBNReLU(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = ConvBNReLU(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = ConvBNReLU(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = GridReduction35(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = GridReduction17(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, num_classes)  # ImageNet logits; unused by FID, kept for strict loading
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 1 or 3, H, W] -> float32 [N, 3, 299, 299] in [-1, 1], as pytorch-fid prepares its input."""
        x = rgb_uint8(images, "the FID Inception").to(torch.float32).div(255)
        if self.resize_input:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed float32 [N, 3, 299, 299] -> pool3 features [N, 2048]."""
        for layer in (self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3):
            x = layer(x)  # -> [N, 64, 147, 147]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # -> [N, 64, 73, 73]
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # -> [N, 192, 71, 71]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # -> [N, 192, 35, 35]
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)  # -> [N, 768, 17, 17]
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a):
            x = block(x)  # -> [N, 1280, 8, 8]
        x = self.Mixed_7c(self.Mixed_7b(x))  # -> [N, 2048, 8, 8]
        return x.mean(dim=(2, 3), dtype=torch.float32)  # global average pool -> [N, 2048]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(images)
        if self.Conv2d_1a_3x3.conv.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.features(x)

    def fold_batchnorm(self) -> FIDInceptionV3:
        """Fold every batch normalisation into its convolution (inference only; the state dict is unchanged)."""
        for module in self.modules():
            if isinstance(module, ConvBNReLU):
                module.fold_batchnorm()
        return self

    def optimize_for_inference(self, channels_last: bool = True) -> FIDInceptionV3:
        """Channels-last weights (faster oneDNN/cuDNN convolutions) and folded batch norms. Returns self."""
        if channels_last:
            self.to(memory_format=torch.channels_last)
        return self.fold_batchnorm()


def random_fid_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded random state dict in the weight file's layout, for tests and benchmarks without the real weights.

    Convolutions get He-normal weights and batch norms statistics near identity, so activations keep an O(1)
    scale through the 94 layers (the features mean nothing, but every operation is exercised).
    """
    generator = torch.Generator().manual_seed(seed)
    reference = FIDInceptionV3().state_dict()
    state: dict[str, torch.Tensor] = {}
    for name, tensor in reference.items():
        shape = tensor.shape
        if name.endswith("num_batches_tracked"):
            value = torch.zeros_like(tensor)
        elif name.endswith("conv.weight") or name == "fc.weight":
            fan_in = shape[1:].numel()
            value = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif name.endswith("bn.weight") or name.endswith("running_var"):
            value = 0.8 + 0.4 * torch.rand(shape, generator=generator)
        else:  # bn.bias, running_mean, fc.bias
            value = 0.05 * torch.randn(shape, generator=generator)
        state[name] = value.to(tensor.dtype)
    return state

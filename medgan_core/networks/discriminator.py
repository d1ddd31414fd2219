"""The StyleGAN2 discriminator (Karras et al. 2020): residual blocks down to 4x4, minibatch standard deviation,
and conditioning by projection (Miyato & Koyama 2018). Names and maths follow NVIDIA's StyleGAN2 code.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from medgan_core.networks.layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    MappingNetwork,
    check_shape,
    compute_dtype,
    cpu_channels_last,
    filter_buffer,
    float16_allowed,
)
from medgan_core.ops import upfirdn2d


class DiscriminatorBlock(torch.nn.Module):
    """One resolution: (fromRGB), conv0 3x3, conv1 3x3 with downsampling by 2, (1x1 residual skip).

    [N, in_channels, res, res] -> [N, out_channels, res/2, res/2]. Layers with an index (counted over the whole
    discriminator from `first_layer_idx`) below `freeze_layers` hold their weights as buffers (Freeze-D).
    """

    def __init__(
        self,
        in_channels: int,  # 0 = first block (reads the image)
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter=(1, 3, 3, 1),
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        freeze_layers: int = 0,
    ):
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels must be 0 or tmp_channels ({tmp_channels}), got {in_channels}")
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        resample_filter = list(resample_filter)
        self.register_buffer("resample_filter", filter_buffer(resample_filter))

        self.num_layers = 0

        def trainable() -> bool:
            is_trainable = self.first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return is_trainable

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, trainable=trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=trainable(), **common)
        self.conv1 = Conv2dLayer(
            tmp_channels, out_channels, kernel_size=3, down=2, trainable=trainable(),
            resample_filter=resample_filter, **common,
        )  # fmt: skip
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels, out_channels, kernel_size=1, bias=False, down=2, trainable=trainable(),
                resample_filter=resample_filter, channels_last=self.channels_last,
            )  # fmt: skip

    def forward(self, x, img, force_fp32=False):
        """x: [N, in_channels, res, res] or None; img: [N, img_channels, res, res] or None."""
        if not float16_allowed(x if x is not None else img):
            force_fp32 = True  # float16 only on CUDA, as NVIDIA
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else compute_dtype(self)
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if dtype == compute_dtype(self) and cpu_channels_last(x if x is not None else img):
            memory_format = torch.channels_last  # the fast layout for CPU convolutions

        if x is not None:
            check_shape(x, [None, self.in_channels, self.resolution, self.resolution], "x")
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == "skip":
            check_shape(img, [None, self.img_channels, self.resolution, self.resolution], "img")
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution:d}, architecture={self.architecture}"


class MinibatchStdLayer(torch.nn.Module):
    """Append the standard deviation across groups of samples as extra feature maps (Karras et al. 2018).

    [N, C, H, W] -> [N, C + num_channels, H, W]; N must be divisible by min(group_size, N).
    """

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(int(self.group_size), n) if self.group_size is not None else n
        f = self.num_channels
        if n % g != 0:
            raise ValueError(f"batch size {n} is not divisible by the minibatch-std group size {g}")
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]: sample i goes to group i % n
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)  # [n, F, c, H, W] variance over each group
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])  # [n, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels:d}"


class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 head: (fromRGB), minibatch std, conv 3x3, dense, output (a logit, or a projection onto cmap).

    [N, in_channels, 4, 4] -> logits [N, 1].
    """

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,  # size of the mapped label, 0 = unconditional
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,  # None = the whole minibatch
        mbstd_num_channels: int = 1,  # 0 = no minibatch std
        activation: str = "lrelu",
        conv_clamp: float | None = None,
    ):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = (
            MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
            if mbstd_num_channels > 0
            else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * (resolution**2), in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap, force_fp32=False):
        """x: [N, in_channels, 4, 4]; img: [N, img_channels, 4, 4] (skip only); cmap: [N, cmap_dim] or None."""
        del force_fp32  # the epilogue always runs in float32 (float64 after `.double()`)
        dtype = compute_dtype(self)
        check_shape(x, [None, self.in_channels, self.resolution, self.resolution], "x")
        x = x.to(dtype=dtype, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            check_shape(img, [None, self.img_channels, self.resolution, self.resolution], "img")
            img = img.to(dtype=dtype, memory_format=torch.contiguous_format)
            x = x + self.fromrgb(img)

        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)  # [N, 1] or [N, cmap_dim]

        if self.cmap_dim > 0:
            check_shape(cmap, [None, self.cmap_dim], "cmap")
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))  # projection
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution:d}, architecture={self.architecture}"


class Discriminator(torch.nn.Module):
    """D(img, c): [N, img_channels, res, res], [N, c_dim] -> logits [N, 1].

    Blocks b{res}, ..., b8 then the epilogue b4; labels are mapped to `cmap` by a MappingNetwork (conditioning by
    projection). `init_kwargs` holds the constructor arguments as given.
    """

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: float | None = 256,
        cmap_dim: int | None = None,  # None = channels at 4x4
        block_kwargs: dict | None = None,  # for DiscriminatorBlock (e.g. freeze_layers)
        mapping_kwargs: dict | None = None,  # for MappingNetwork
        epilogue_kwargs: dict | None = None,  # for DiscriminatorEpilogue (mbstd_group_size, mbstd_num_channels)
    ):
        super().__init__()
        block_kwargs = {} if block_kwargs is None else block_kwargs
        mapping_kwargs = {} if mapping_kwargs is None else mapping_kwargs
        epilogue_kwargs = {} if epilogue_kwargs is None else epilogue_kwargs
        self.init_kwargs = copy.deepcopy(
            dict(
                c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels, architecture=architecture,
                channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res,
                conv_clamp=conv_clamp, cmap_dim=cmap_dim, block_kwargs=block_kwargs, mapping_kwargs=mapping_kwargs,
                epilogue_kwargs=epilogue_kwargs,
            )
        )  # fmt: skip
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        if cmap_dim is None:
            cmap_dim = channels_dict[4]
        if c_dim == 0:
            cmap_dim = 0

        common_kwargs = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        cur_layer_idx = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res] if res < img_resolution else 0
            block = DiscriminatorBlock(
                in_channels, channels_dict[res], channels_dict[res // 2], resolution=res,
                first_layer_idx=cur_layer_idx, use_fp16=res >= fp16_resolution, **block_kwargs, **common_kwargs,
            )  # fmt: skip
            setattr(self, f"b{res}", block)
            cur_layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **mapping_kwargs
            )
        self.b4 = DiscriminatorEpilogue(
            channels_dict[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **common_kwargs
        )

    def forward(self, img, c, update_emas=False, **block_kwargs):
        """img: [N, img_channels, res, res] (roughly [-1, 1]); c: [N, c_dim]. Returns logits [N, 1]."""
        del update_emas  # nothing to update; accepted for a uniform call signature
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim:d}, img_resolution={self.img_resolution:d}, img_channels={self.img_channels:d}"

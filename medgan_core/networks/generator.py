"""The StyleGAN2 generator (Karras et al. 2020, configs E-F): mapping network plus synthesis network.

Names, shapes, initialisation and maths follow NVIDIA's StyleGAN2 (stylegan2-ada-pytorch / stylegan3 code
bases), so their network weights load with `strict=True` and give the same images.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from medgan_core.networks.layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    MappingNetwork,
    activate,
    check_shape,
    compute_dtype,
    cpu_channels_last,
    cpu_inference,
    filter_buffer,
    float16_allowed,
    fold_epilogue,
)
from medgan_core.ops import bias_act, upfirdn2d
from medgan_core.ops.modulated_conv2d import modulated_conv2d, modulated_conv2d_bias_act

NOISE_MODES = ("random", "const", "none")


def _hooked(*modules: torch.nn.Module) -> bool:
    """Whether a forward hook on these modules (or inside them) may keep their inputs or outputs."""
    return any(m._forward_hooks or m._forward_pre_hooks for module in modules for m in module.modules())


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution (optionally upsampling by 2), per-pixel noise, bias and lrelu.

    [N, in_channels, resolution // up, resolution // up] -> [N, out_channels, resolution, resolution].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,  # output resolution of this layer
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter=(1, 3, 3, 1),
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", filter_buffer(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)  # w -> styles, initially ones
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        self.weight = torch.nn.Parameter(weight)
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode="random", fused_modconv=True, gain=1, overwrite_input=False):
        """x: [N, in_channels, H, W]; w: [N, w_dim]. overwrite_input: CPU inference may reuse x's memory."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        in_resolution = self.resolution // self.up
        check_shape(x, [None, self.in_channels, in_resolution, in_resolution], "x")
        styles = self.affine(w)  # [N, in_channels]

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength

        flip_weight = self.up == 1
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if cpu_inference(x):
            return modulated_conv2d_bias_act(
                x, self.weight, styles, self.bias, noise=noise, up=self.up, padding=self.padding,
                resample_filter=self.resample_filter, flip_weight=flip_weight, act=self.activation, gain=act_gain,
                clamp=act_clamp, overwrite_input=overwrite_input,
            )  # fmt: skip
        if not fused_modconv and fold_epilogue(x, self.activation, act_gain):  # the gain on the demodulation
            x = modulated_conv2d(
                x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                resample_filter=self.resample_filter, flip_weight=flip_weight, fused_modconv=False, gain=act_gain,
            )  # fmt: skip
            return activate(x + (self.bias.to(x.dtype) * act_gain).reshape(1, -1, 1, 1), self.activation, act_clamp)
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, flip_weight=flip_weight, fused_modconv=fused_modconv,
        )  # fmt: skip
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}, "
            f"resolution={self.resolution:d}, up={self.up}, activation={self.activation}"
        )


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution without demodulation: features [N, C, H, W] -> image [N, img_channels, H, W]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        self.weight = torch.nn.Parameter(weight)
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size**2))

    def forward(self, x, w, fused_modconv=True):
        styles = self.affine(w) * self.weight_gain
        if cpu_inference(x):
            return modulated_conv2d_bias_act(
                x, self.weight, styles, self.bias, demodulate=False, clamp=self.conv_clamp
            )
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}"


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (upsampling) conv0, conv1 and toRGB.

    Consumes `num_conv + num_torgb` ws. Architectures: 'orig' (toRGB at the last block only), 'skip' (toRGB
    outputs of every block summed after upsampling), 'resnet' (residual connection around conv0/conv1).
    """

    def __init__(
        self,
        in_channels: int,  # 0 = first block (starts from the learned constant)
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter=(1, 3, 3, 1),
        conv_clamp: float | None = 256,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        fused_modconv_default=True,  # True, False or 'inference_only' (fused when not training)
        **layer_kwargs,  # for SynthesisLayer
    ):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        resample_filter = list(resample_filter)
        self.register_buffer("resample_filter", filter_buffer(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        if in_channels != 0:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                resample_filter=resample_filter, conv_clamp=conv_clamp, channels_last=self.channels_last,
                **layer_kwargs,
            )  # fmt: skip
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp,
            channels_last=self.channels_last, **layer_kwargs,
        )  # fmt: skip
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(
                out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp, channels_last=self.channels_last
            )
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels, out_channels, kernel_size=1, bias=False, up=2, resample_filter=resample_filter,
                channels_last=self.channels_last,
            )  # fmt: skip

    def forward(
        self, x, img, ws, force_fp32=False, fused_modconv=None, update_emas=False, x_reusable=False, **layer_kwargs
    ):
        """x: [N, in_channels, res/2, res/2] or None; img: [N, img_channels, res/2, res/2] or None;
        ws: [N, num_conv + num_torgb, w_dim]. Returns (x [N, out_channels, res, res], img [N, C, res, res]).
        x_reusable: nothing reads x after this block, so CPU inference may scale it in place."""
        del update_emas  # nothing to update here; accepted for a uniform call signature
        check_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim], "ws")
        w_iter = iter(ws.unbind(dim=1))
        if not float16_allowed(ws):
            force_fp32 = True  # float16 only on CUDA, as NVIDIA
        base_dtype = compute_dtype(self)
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else base_dtype
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        fast = cpu_inference(ws) and dtype == torch.float32
        if fast or (dtype == base_dtype and cpu_channels_last(ws)):
            memory_format = torch.channels_last  # the fast layout for CPU convolutions
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == "inference_only":
            fused_modconv = not self.training

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = x.contiguous(memory_format=memory_format)
        else:
            check_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2], "x")
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, overwrite_input=fast, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
            x = y.add_(x)
        else:
            x = self.conv0(
                x, next(w_iter), fused_modconv=fused_modconv, overwrite_input=fast and x_reusable, **layer_kwargs
            )
            reuse = fast and not _hooked(self.conv0, self.conv1)  # only conv1 reads conv0's output (or a hook)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, overwrite_input=reuse, **layer_kwargs)

        if img is not None:
            check_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2], "img")
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=base_dtype, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution:d}, architecture={self.architecture}"


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution] (roughly in [-1, 1]).

    Blocks b4, b8, ..., b{img_resolution} with min(channel_base // res, channel_max) channels; the
    `num_fp16_res` highest resolutions run in float16 on CUDA.
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        **block_kwargs,  # for SynthesisBlock (architecture, resample_filter, conv_clamp, ...)
    ):
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res // 2] if res > 4 else 0
            is_last = res == self.img_resolution
            block = SynthesisBlock(
                in_channels, channels_dict[res], w_dim=w_dim, resolution=res, img_channels=img_channels,
                is_last=is_last, use_fp16=res >= fp16_resolution, **block_kwargs,
            )  # fmt: skip
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws, **block_kwargs):
        """ws: [N, num_ws, w_dim]; block_kwargs: noise_mode, fused_modconv, force_fp32, update_emas."""
        check_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ws = ws.to(compute_dtype(self))
        block_ws = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            # Consecutive blocks share one w: a block's toRGB uses the next block's first w.
            block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv

        x = img = None
        previous = None
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            block = getattr(self, f"b{res}")
            # x from the previous block is read by nothing after this block, unless a hook kept it.
            x_reusable = previous is not None and not _hooked(previous)
            x, img = block(x, img, cur_ws, x_reusable=x_reusable, **block_kwargs)
            previous = block
        return img

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim:d}, num_ws={self.num_ws:d}, img_resolution={self.img_resolution:d}, "
            f"img_channels={self.img_channels:d}, num_fp16_res={self.num_fp16_res:d}"
        )


class Generator(torch.nn.Module):
    """G(z, c) = synthesis(mapping(z, c)): [N, z_dim], [N, c_dim] -> [N, img_channels, res, res].

    `init_kwargs` holds the constructor arguments as given, so `Generator(**G.init_kwargs)` rebuilds it.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict | None = None,  # for MappingNetwork
        **synthesis_kwargs,  # for SynthesisNetwork
    ):
        super().__init__()
        mapping_kwargs = {} if mapping_kwargs is None else mapping_kwargs
        self.init_kwargs = copy.deepcopy(
            dict(
                z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                mapping_kwargs=mapping_kwargs, **synthesis_kwargs,
            )
        )  # fmt: skip
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        """z: [N, z_dim]; c: [N, c_dim]; synthesis_kwargs: noise_mode, fused_modconv, force_fp32."""
        ws = self.mapping(
            z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas
        )
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)

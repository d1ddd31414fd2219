"""Building blocks shared by the generator and the discriminator: equalized-learning-rate layers and the mapping
network (Karras et al. 2019/2020). Parameter and buffer names follow NVIDIA's StyleGAN2 code so that official
state dicts load unchanged.

Equalized learning rate: weights are stored as N(0, 1) / lr_multiplier and scaled at run time by
`lr_multiplier / sqrt(fan_in)`, so every layer learns at the same pace under Adam.
"""

from __future__ import annotations

import numpy as np
import torch

from medgan_core.ops import bias_act, conv2d_resample, upfirdn2d


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale `x` to unit root-mean-square along `dim` (pixel norm of the input latents)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def compute_dtype(module: torch.nn.Module) -> torch.dtype:
    """float64 when `module` holds float64 tensors (after `.double()`, for gradcheck), else float32.

    NVIDIA's networks compute in float32 (float16 in fp16 blocks on CUDA); float64 is only for checking
    derivatives.
    """
    for tensor in module.parameters():
        return torch.float64 if tensor.dtype == torch.float64 else torch.float32
    for tensor in module.buffers():
        return torch.float64 if tensor.dtype == torch.float64 else torch.float32
    return torch.float32


# Device types on which blocks with use_fp16 compute in float16. NVIDIA's networks do so on CUDA only (CPU float16
# is slow); the tests widen this to {"cuda", "cpu"} so that CI runs the mixed-precision path without a GPU.
FLOAT16_DEVICE_TYPES = frozenset({"cuda"})


def float16_allowed(tensor: torch.Tensor) -> bool:
    """True when a use_fp16 block may compute `tensor`'s batch in float16 (see FLOAT16_DEVICE_TYPES)."""
    return tensor.device.type in FLOAT16_DEVICE_TYPES


def cpu_inference(tensor: torch.Tensor) -> bool:
    """True when a forward pass on `tensor` may take the CPU inference path: no autograd, float32 on the CPU.

    That path (channels-last activations, `modulated_conv2d_bias_act`) gives the same images up to float32
    rounding; training and GPU runs keep NVIDIA's formulation.
    """
    return not torch.is_grad_enabled() and tensor.device.type == "cpu" and tensor.dtype == torch.float32


# CPU blocks (training included) run on channels-last activations: oneDNN's convolutions, their backward passes and
# the depthwise FIR filters are 10-50% faster in that layout at the records' shapes (16 x 32-64 channels, 4x4 to
# 64x64; benchmarks/README.md, issue 27). Same maths; the sums run in another order (float32 rounding). Tests set
# it to False to run the NCHW path as the reference.
CPU_CHANNELS_LAST = True


def cpu_channels_last(tensor: torch.Tensor) -> bool:
    """True when a block computing `tensor` (float32 or float64, on the CPU) runs in channels-last."""
    return CPU_CHANNELS_LAST and tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64)


# CPU training: a layer's output gain goes into its (tiny) weight and bias, and a convolution's bias into the
# convolution itself, so bias, activation and gain take one pass over the activations (the activation) instead of
# three, forward and backward: act(conv(x, w) + b) * g == act(conv(x, w * g) + b * g) for g > 0 and a positively
# homogeneous act (linear, relu, lrelu). Same maths; float32 rounding differs. Tests set it to False for the
# reference path (bias_act).
CPU_FOLD_EPILOGUE = True


def fold_epilogue(x: torch.Tensor, activation: str, gain: float) -> bool:
    """Whether a layer on `x` folds its gain into its weights (see CPU_FOLD_EPILOGUE)."""
    return CPU_FOLD_EPILOGUE and x.device.type == "cpu" and activation in ("linear", "relu", "lrelu") and gain > 0


def activate(x: torch.Tensor, activation: str, clamp: float | None) -> torch.Tensor:
    """act(x) (linear, relu or lrelu with its default slope), then the clamp: the rest of a folded epilogue."""
    if activation == "lrelu":
        x = torch.nn.functional.leaky_relu(x, bias_act.activation_funcs["lrelu"].def_alpha)
    elif activation == "relu":
        x = torch.nn.functional.relu(x)
    return x if clamp is None else x.clamp(-float(clamp), float(clamp))


def filter_buffer(resample_filter) -> torch.Tensor:
    """The [fh, fw] low-pass filter buffer, made on the default device (so that meta-device builds stay cheap)."""
    return upfirdn2d.setup_filter(resample_filter, device=torch.get_default_device())


def _register(module: torch.nn.Module, name: str, tensor: torch.Tensor | None, trainable: bool) -> None:
    """A parameter when trainable, else a buffer of the same name (frozen layers keep NVIDIA's state-dict keys)."""
    if tensor is None:
        setattr(module, name, None)
    elif trainable:
        setattr(module, name, torch.nn.Parameter(tensor))
    else:
        module.register_buffer(name, tensor)


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate and a fused bias + activation: [N, in] -> [N, out]."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,  # add a bias before the activation
        activation: str = "linear",  # a key of bias_act.activation_funcs
        lr_multiplier: float = 1.0,  # learning-rate multiplier (0.01 in the mapping network)
        bias_init: float = 0.0,  # initial value of the bias (1 for style affines)
        trainable: bool = True,  # False: weight and bias are buffers
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier
        weight = torch.randn([out_features, in_features]) / lr_multiplier
        bias_tensor = torch.full([out_features], np.float32(bias_init)) if bias else None
        _register(self, "weight", weight, trainable)
        _register(self, "bias", bias_tensor, trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if cpu_inference(x) and self.bias is not None and self.activation in ("linear", "lrelu"):
            # Two calls, no scaled copies of weight and bias: lrelu(v) * gain == lrelu(v * gain) for gain > 0.
            gain = bias_act.activation_funcs[self.activation].def_gain
            x = torch.addmm(self.bias, x, self.weight.t(), beta=self.bias_gain * gain, alpha=self.weight_gain * gain)
            alpha = bias_act.activation_funcs["lrelu"].def_alpha
            return x if self.activation == "linear" else torch.nn.functional.leaky_relu_(x, alpha)
        if self.activation != "linear" and fold_epilogue(x, self.activation, 1.0):  # one addmm, the activation
            gain = bias_act.activation_funcs[self.activation].def_gain
            w = self.weight.to(x.dtype) * (self.weight_gain * gain)
            if self.bias is None:
                return activate(x.matmul(w.t()), self.activation, None)
            b = self.bias.to(x.dtype) * (self.bias_gain * gain)
            return activate(torch.addmm(b.unsqueeze(0), x, w.t()), self.activation, None)
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features:d}, out_features={self.out_features:d}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalized learning rate, optional FIR up/downsampling, bias, activation and clamping.

    [N, in_channels, H, W] -> [N, out_channels, H * up // down, W * up // down].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter=(1, 3, 3, 1),  # low-pass filter for resampling
        conv_clamp: float | None = None,  # clamp the output to +-conv_clamp; None disables
        channels_last: bool = False,  # store the weight in channels_last memory format
        trainable: bool = True,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", filter_buffer(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size**2))
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        _register(self, "weight", weight, trainable)
        _register(self, "bias", torch.zeros([out_channels]) if bias else None, trainable)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if fold_epilogue(x, self.activation, act_gain):  # gain in the weight, bias in the convolution
            w = self.weight * (self.weight_gain * act_gain)
            b = self.bias.to(x.dtype) * act_gain if self.bias is not None else None
            x = conv2d_resample.conv2d_resample(
                x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                flip_weight=self.up == 1, bias=b,
            )  # fmt: skip
            return activate(x, self.activation, act_clamp)
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        flip_weight = self.up == 1  # correlation is slightly faster; the transposed path wants convolution
        x = conv2d_resample.conv2d_resample(
            x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
            flip_weight=flip_weight,
        )  # fmt: skip
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, activation={self.activation}, "
            f"up={self.up}, down={self.down}"
        )


class MappingNetwork(torch.nn.Module):
    """The mapping network f: (z, c) -> w, an MLP of `num_layers` equalized dense layers.

    Outputs [N, num_ws, w_dim] (each synthesis layer's w, identical before style mixing) or [N, w_dim] when
    num_ws is None. Tracks the running mean `w_avg` for the truncation trick.
    """

    def __init__(
        self,
        z_dim: int,  # input latent (Z) dimensionality, 0 = no latent
        c_dim: int,  # conditioning label (C) dimensionality, 0 = no label
        w_dim: int,  # intermediate latent (W) dimensionality
        num_ws: int | None,  # number of ws to broadcast to, None = do not broadcast
        num_layers: int = 8,
        embed_features: int | None = None,  # label embedding size, None = w_dim
        layer_features: int | None = None,  # hidden size, None = w_dim
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.998,  # decay of the running mean of w, None = do not track
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features_list = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features_list[idx], features_list[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,  # [N, z_dim]
        c: torch.Tensor | None,  # [N, c_dim]
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,  # truncate only the first `truncation_cutoff` ws; None = all
        update_emas: bool = False,  # update w_avg (training)
    ) -> torch.Tensor:
        x = None
        dtype = compute_dtype(self)
        if self.z_dim > 0:
            check_shape(z, [None, self.z_dim], "z")
            x = normalize_2nd_moment(z.to(dtype))
        if self.c_dim > 0:
            check_shape(c, [None, self.c_dim], "c")
            y = normalize_2nd_moment(self.embed(c.to(dtype)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]

        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs w_avg, but this mapping network does not track it")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws}"


def check_shape(tensor: torch.Tensor | None, shape: list[int | None], name: str) -> None:
    """Raise a ValueError naming `name` unless `tensor` has `shape` (None entries match any size)."""
    if (
        tensor is None
        or tensor.ndim != len(shape)
        or any(s is not None and int(t) != s for t, s in zip(tensor.shape, shape))
    ):
        got = None if tensor is None else tuple(tensor.shape)
        raise ValueError(f"{name} must have shape {shape} (None = any), got {got}")

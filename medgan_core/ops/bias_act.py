"""Fused bias and activation: `y = clamp(act(x + b) * gain, -clamp, clamp)`.

The reference implementation is plain PyTorch, so first and second derivatives come from autograd on any device
and dtype. `bias_act()` runs the fused Triton kernel instead where `dispatch.use_triton()` says so (CUDA tensors).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medgan_core.ops import dispatch
from medgan_core.ops.triton import custom_ops


@dataclass(frozen=True)
class ActivationSpec:
    """One activation function and its defaults (NVIDIA's table).

    func:         y = func(x, alpha)
    def_alpha:    default shape parameter (the negative slope of lrelu)
    def_gain:     default output gain; sqrt(2) keeps unit variance for ReLU-like functions (He et al.)
    cuda_idx:     the activation's index in NVIDIA's CUDA kernel (kept for fused implementations)
    ref:          which tensor a fused backward needs: 'x' (the input), 'y' (the output) or '' (neither)
    has_2nd_grad: whether the second derivative is non-zero almost everywhere
    """

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float
    cuda_idx: int
    ref: str
    has_2nd_grad: bool


activation_funcs: dict[str, ActivationSpec] = {
    "linear": ActivationSpec(lambda x, alpha: x, 0.0, 1.0, 1, "", False),
    "relu": ActivationSpec(lambda x, alpha: F.relu(x), 0.0, math.sqrt(2), 2, "y", False),
    "lrelu": ActivationSpec(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2), 3, "y", False),
    "tanh": ActivationSpec(lambda x, alpha: torch.tanh(x), 0.0, 1.0, 4, "y", True),
    "sigmoid": ActivationSpec(lambda x, alpha: torch.sigmoid(x), 0.0, 1.0, 5, "y", True),
    "elu": ActivationSpec(lambda x, alpha: F.elu(x), 0.0, 1.0, 6, "y", True),
    "selu": ActivationSpec(lambda x, alpha: F.selu(x), 0.0, 1.0, 7, "y", True),
    "softplus": ActivationSpec(lambda x, alpha: F.softplus(x), 0.0, 1.0, 8, "y", True),
    "swish": ActivationSpec(lambda x, alpha: torch.sigmoid(x) * x, 0.0, math.sqrt(2), 9, "x", True),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Add a bias, apply an activation, scale by a gain, clamp.

    Args:
        x:     activations of any shape.
        b:     bias of shape [x.shape[dim]], or None.
        dim:   the dimension of `x` that `b` runs along.
        act:   a key of `activation_funcs`.
        alpha: shape parameter of the activation (None: its default, e.g. 0.2 for lrelu).
        gain:  output scale (None: the activation's default, e.g. sqrt(2) for lrelu).
        clamp: clamp the output (after the gain) to [-clamp, +clamp]; None disables.
        impl:  'auto', 'ref' or 'triton' (see `medgan_core.ops.dispatch`).

    Returns:
        Tensor of the same shape and dtype as `x`.
    """
    if act not in activation_funcs:
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(activation_funcs)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be non-negative or None, got {clamp}")
    if not x.is_floating_point():
        raise TypeError(f"bias_act needs a floating-point tensor, got {x.dtype}")
    if b is not None and (b.ndim != 1 or not 0 <= dim < x.ndim or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias of shape {tuple(b.shape)} does not match dim {dim} of x {tuple(x.shape)}")
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)

    if dispatch.use_triton("bias_act", impl, x):
        return custom_ops.bias_act(x, b, dim, act, alpha, gain, float(clamp) if clamp is not None else -1.0)

    # Reference. Without autograd (inference), scale and clamp the freshly made tensor in place: fewer buffers.
    grad_needed = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    source = x
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    in_place = not grad_needed and x is not source
    if gain != 1:
        x = x.mul_(gain) if in_place else x * gain
        in_place = not grad_needed
    if clamp is not None:
        x = x.clamp_(-float(clamp), float(clamp)) if in_place else x.clamp(-float(clamp), float(clamp))
    return x

"""Transfer learning between StyleGAN2 networks of different resolution or channel count.

`transfer_weights(source, target)` copies every parameter and buffer whose name and shape match (NVIDIA's
`misc.copy_params_and_buffers` rule), adapts the image-facing layers to a different number of image channels,
and leaves everything else at the target's initial value. Blocks are named by resolution (`synthesis.b64`,
`b64`), so a FFHQ 1024 source shares b4 ... b256 with a 256 target; a target above the source keeps its extra
blocks at init.

Channel adaptation (the "RGB rule"), for 3 -> 1 and 1 -> 3 image channels:
- `torgb` (generator; every block in the skip architecture): weight [C_img, C_in, 1, 1] and bias [C_img].
  3 -> 1: the gray output is the mean of the RGB outputs (rgb_rule='mean', keeps image scale), or the ITU-R
  BT.601 luma 0.299 R + 0.587 G + 0.114 B (rgb_rule='luma'); since torgb is linear and images are summed over
  blocks, the adapted generator draws exactly that combination of the source's RGB image (before clamping).
  1 -> 3: the gray row is copied to each colour.
- `fromrgb` (discriminator; every block in the skip architecture): weight [C_out, C_img, 1, 1]. The layer's
  runtime weight gain is 1/sqrt(C_img), so the adapted weight is rescaled by gain_source / gain_target.
  3 -> 1: input columns summed, so a gray image gives exactly the activations the source gives to that image
  replicated to RGB. 1 -> 3: the column is split evenly, so an RGB image acts like its channel mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

RGB_LAYER_KEYS = ("torgb", "fromrgb")
LUMA_BT601 = (0.299, 0.587, 0.114)


@dataclass
class TransferReport:
    """What `transfer_weights` did to each tensor of the target (names as in `target.state_dict()`)."""

    copied: list[str] = field(default_factory=list)
    adapted: list[tuple[str, tuple, tuple, str]] = field(default_factory=list)  # (name, src shape, tgt shape, rule)
    left_at_init: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    unused_source: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"Weight transfer: {len(self.copied)} copied, {len(self.adapted)} adapted, "
            f"{len(self.left_at_init)} left at init, {len(self.unused_source)} source tensors unused"
        ]
        for name, src_shape, tgt_shape, rule in self.adapted:
            lines.append(f"  adapted  {name}: {list(src_shape)} -> {list(tgt_shape)} ({rule})")
        for name, reason in self.left_at_init:
            lines.append(f"  at init  {name}: {reason}")
        if self.unused_source:
            lines.append(f"  unused source tensors: {', '.join(self.unused_source)}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """JSON-ready form (for a training record)."""
        return {
            "copied": list(self.copied),
            "adapted": [[n, list(s), list(t), r] for n, s, t, r in self.adapted],
            "left_at_init": [list(item) for item in self.left_at_init],
            "unused_source": list(self.unused_source),
        }


def _rgb_layer_kind(name: str) -> str | None:
    parts = name.split(".")
    for kind in RGB_LAYER_KEYS:
        if kind in parts[:-1] and parts[-1] in ("weight", "bias") and parts[-2] == kind:
            return kind
    return None


def _channel_axis(kind: str, name: str) -> int:
    return 1 if kind == "fromrgb" and name.endswith("weight") else 0


def _adaptable(name: str, src_shape: tuple, tgt_shape: tuple) -> bool:
    kind = _rgb_layer_kind(name)
    if kind is None or len(src_shape) != len(tgt_shape):
        return False
    axis = _channel_axis(kind, name)
    others_match = all(s == t for i, (s, t) in enumerate(zip(src_shape, tgt_shape)) if i != axis)
    return others_match and {src_shape[axis], tgt_shape[axis]} == {1, 3}


def plan_transfer(source_shapes: dict[str, tuple], target_shapes: dict[str, tuple]) -> TransferReport:
    """Decide, from names and shapes alone, which target tensors are copied, adapted or left at init."""
    report = TransferReport()
    for name, tgt_shape in target_shapes.items():
        tgt_shape = tuple(tgt_shape)
        if name not in source_shapes:
            report.left_at_init.append((name, "absent in source"))
            continue
        src_shape = tuple(source_shapes[name])
        if src_shape == tgt_shape:
            report.copied.append(name)
        elif _adaptable(name, src_shape, tgt_shape):
            kind = _rgb_layer_kind(name)
            report.adapted.append(
                (
                    name,
                    src_shape,
                    tgt_shape,
                    f"{kind} {src_shape[_channel_axis(kind, name)]}->{tgt_shape[_channel_axis(kind, name)]}",
                )
            )
        else:
            report.left_at_init.append((name, f"shape {list(src_shape)} in source vs {list(tgt_shape)}"))
    used = set(report.copied) | {name for name, *_ in report.adapted}
    report.unused_source = [name for name in source_shapes if name not in used]
    return report


def _weight_gain(module: torch.nn.Module, layer_name: str, in_channels: int) -> float:
    """The runtime weight gain of a fromrgb layer (NVIDIA: 1/sqrt(fan_in) with a 1x1 kernel)."""
    try:
        gain = getattr(module.get_submodule(layer_name), "weight_gain", None)
    except AttributeError:
        gain = None
    return float(gain) if gain is not None else 1.0 / math.sqrt(in_channels)


def adapt_rgb_tensor(
    name: str,
    value: torch.Tensor,
    target_shape: tuple,
    rgb_rule: str = "mean",
    gain_ratio: float = 1.0,
) -> torch.Tensor:
    """Adapt one torgb/fromrgb tensor between 3 and 1 image channels (rules in the module docstring)."""
    kind = _rgb_layer_kind(name)
    axis = _channel_axis(kind, name)
    src_c, tgt_c = value.shape[axis], target_shape[axis]
    value = value.detach().to(torch.float64)
    if kind == "torgb":
        if src_c == 3 and tgt_c == 1:
            if rgb_rule == "mean":
                weights = torch.full((3,), 1.0 / 3.0, dtype=torch.float64)
            elif rgb_rule == "luma":
                weights = torch.tensor(LUMA_BT601, dtype=torch.float64)
            else:
                raise ValueError(f"rgb_rule must be 'mean' or 'luma', got {rgb_rule!r}")
            shape = [3] + [1] * (value.ndim - 1)
            out = (value * weights.reshape(shape)).sum(dim=0, keepdim=True)
        else:  # 1 -> 3: every colour draws the gray image
            out = value.expand(tgt_c, *value.shape[1:]).clone()
    else:
        if name.endswith("bias"):
            out = value.clone()
        elif src_c == 3 and tgt_c == 1:
            out = value.sum(dim=1, keepdim=True) * gain_ratio
        else:
            out = value.expand(value.shape[0], tgt_c, *value.shape[2:]) / tgt_c * gain_ratio
    return out


@torch.no_grad()
def transfer_weights(
    source: torch.nn.Module,
    target: torch.nn.Module,
    rgb_rule: str = "mean",
) -> TransferReport:
    """Copy matching tensors from `source` into `target` (in place), adapting RGB layers; returns the report.

    Works for G and D alike (same class on both sides). Tensors on the meta device are planned but not copied,
    so the report for FFHQ-sized networks can be had without allocating them.
    """
    if rgb_rule not in ("mean", "luma"):
        raise ValueError(f"rgb_rule must be 'mean' or 'luma', got {rgb_rule!r}")
    src_state = source.state_dict()
    tgt_state = target.state_dict()
    report = plan_transfer(
        {k: tuple(v.shape) for k, v in src_state.items()}, {k: tuple(v.shape) for k, v in tgt_state.items()}
    )
    for name in report.copied:
        _copy_into(tgt_state[name], src_state[name])
    for name, src_shape, tgt_shape, _ in report.adapted:
        gain_ratio = 1.0
        if _rgb_layer_kind(name) == "fromrgb" and name.endswith("weight"):
            layer = name.rsplit(".", 1)[0]
            gain_ratio = _weight_gain(source, layer, src_shape[1]) / _weight_gain(target, layer, tgt_shape[1])
        value = src_state[name]
        if value.is_meta or tgt_state[name].is_meta:
            continue
        _copy_into(tgt_state[name], adapt_rgb_tensor(name, value, tgt_shape, rgb_rule, gain_ratio))
    return report


def _copy_into(destination: torch.Tensor, value: torch.Tensor) -> None:
    if destination.is_meta or value.is_meta:
        return
    destination.copy_(value.to(device=destination.device, dtype=destination.dtype))

"""Adaptive discriminator augmentation (ADA): the augmentation pipeline and the controller of its strength p.

From "Training Generative Adversarial Networks with Limited Data" (Karras et al., 2020), following the
semantics, argument names and state-dict names of NVIDIA's `training/augment.py`, so that the `augment_pipe`
of an official network pickle loads into `AugmentPipe`.

Images are NCHW float tensors in [-1, 1] with 1 (grayscale), 3 (RGB) or 4 (RGBA) channels. Every transform is
applied to each image independently with probability `p * multiplier`; all of them are differentiable with
respect to the images (first and second order, so R1 can be computed through the pipe).

Grayscale: hue rotation and saturation are skipped (no random numbers are drawn for them), and the 4x4 colour
matrix C (acting on homogeneous RGB) is collapsed to luma exactly as NVIDIA does: gain = mean over the three RGB
rows of the sum of the row's three colour entries, offset = mean of the three offsets, so brightness adds b,
contrast multiplies by c and luma flip negates the image. For a gray RGB image (R = G = B) brightness, contrast,
luma flip, hue and saturation all map gray to gray, and every channel equals the 1-channel result.

Geometry, blits included, goes through one resampler as in NVIDIA's code: reflect padding, 2x upsampling with the
sym6 wavelet, bilinear grid_sample, 2x downsampling with the flipped filter. Integer translations come out exact;
x-flips and quarter turns carry a sub-pixel phase error because sym6 is not symmetric (about 2 % of the amplitude
for a pattern of one cycle per image, more for finer detail), exactly like NVIDIA's pipeline. Contrast scales
about 0, the mid-grey of [-1, 1], not about the image mean (NVIDIA's definition).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from medgan_core.ops import upfirdn2d

# ----------------------------------------------------------------------------------------------------------------
# Low-pass filters of orthogonal wavelets (decomposition low-pass, as listed by NVIDIA; PyWavelets' dec_lo).

WAVELETS = {
    "sym2": [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025],
    "sym6": [
        0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
    ],
}  # fmt: skip

# Presets of NVIDIA's train.py (--augpipe): probability multipliers of the enabled transforms.
_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
augpipe_specs: dict[str, dict[str, float]] = {
    "blit": dict(_BLIT),
    "geom": dict(_GEOM),
    "color": dict(_COLOR),
    "filter": dict(imgfilter=1),
    "noise": dict(noise=1),
    "cutout": dict(cutout=1),
    "bg": dict(**_BLIT, **_GEOM),
    "bgc": dict(**_BLIT, **_GEOM, **_COLOR),
    "bgcf": dict(**_BLIT, **_GEOM, **_COLOR, imgfilter=1),
    "bgcfn": dict(**_BLIT, **_GEOM, **_COLOR, imgfilter=1, noise=1),
    "bgcfnc": dict(**_BLIT, **_GEOM, **_COLOR, imgfilter=1, noise=1, cutout=1),
}
DEFAULT_AUGPIPE = "bgc"


def make_augment_pipe(preset: str = DEFAULT_AUGPIPE, **overrides) -> AugmentPipe:
    """An `AugmentPipe` with the multipliers of NVIDIA's preset `preset`, updated by `overrides`."""
    if preset not in augpipe_specs:
        raise ValueError(f"unknown augmentation preset {preset!r}: choose one of {sorted(augpipe_specs)}")
    return AugmentPipe(**{**augpipe_specs[preset], **overrides})


# ----------------------------------------------------------------------------------------------------------------
# Batched homogeneous matrices. Entries are Python numbers or tensors of shape [N]; results are [N, k, k].


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    entries = [e if torch.is_tensor(e) else torch.full_like(like, float(e)) for row in rows for e in row]
    return torch.stack(entries, dim=-1).reshape(like.shape[0], len(rows), len(rows[0]))


def _translate2d(tx, ty, like):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like)


def _scale2d(sx, sy, like):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like)


def _rotate2d(theta, like):
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], like)


def _translate3d(t, like):
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], like)


def _scale3d(s, like):
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], like)


def _rotate3d(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rodrigues' rotation by angle theta [N] about the unit axis [3], embedded in homogeneous 4x4: [N, 4, 4]."""
    x, y, z = (float(a) for a in axis[:3])
    c, s = torch.cos(theta), torch.sin(theta)
    cc = 1 - c
    rows = [
        [x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0],
        [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0],
        [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0],
        [0, 0, 0, 1],
    ]
    return _matrix(rows, theta)


def _imgfilter_bank(lowpass: list[float], num_bands: int = 4) -> np.ndarray:
    """Zero-phase filters splitting an image into `num_bands` octave bands: [num_bands, taps], rows sum to a delta.

    Built as in the ADA paper: band 0 is the lowest octave; at each of the num_bands - 1 levels the bank so far
    is upsampled by 2 (zeros inserted) and low-passed with H(z) H(1/z) / 2, and the new band gets the
    high-pass H(-z) H(-1/z) / 2 at the centre.
    """
    h_lo = np.asarray(lowpass, dtype=np.float64)
    h_hi = h_lo * (-1.0) ** np.arange(h_lo.size)
    lo2 = np.convolve(h_lo, h_lo[::-1]) / 2
    hi2 = np.convolve(h_hi, h_hi[::-1]) / 2
    bank = np.zeros([num_bands, 1])
    bank[0, 0] = 1
    for band in range(1, num_bands):
        upsampled = np.zeros([num_bands, bank.shape[1] * 2 - 1])
        upsampled[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo2) for row in upsampled])
        start = (bank.shape[1] - hi2.size) // 2
        bank[band, start : start + hi2.size] += hi2
    return bank


# ----------------------------------------------------------------------------------------------------------------
# Bilinear grid_sample whose backward is itself differentiable: R1 differentiates D's input gradient, which flows
# back through grid_sample's backward. Native support for that arrived only in recent PyTorch releases (2.11 lacks
# it), so the backward op's own backward is written here: grid_sample is linear in its input, so the gradient of
# its backward w.r.t. grad_output is grid_sample again. No second-order gradient w.r.t. the grid (not needed:
# the grid comes from random parameters).


def _grid_sample(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """F.grid_sample(bilinear, zeros padding, align_corners=False) with double backward w.r.t. images."""
    return _GridSample.apply(images, grid)


class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, images, grid):
        ctx.save_for_backward(images, grid)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def backward(ctx, grad_output):
        images, grid = ctx.saved_tensors
        return _GridSampleBackward.apply(grad_output, images, grid, ctx.needs_input_grad[1])


class _GridSampleBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_output, images, grid, grid_needs_grad):
        ctx.save_for_backward(grid)
        # interpolation 0 = bilinear, padding 0 = zeros, align_corners False
        grad_images, grad_grid = torch.ops.aten.grid_sampler_2d_backward(
            grad_output, images, grid, 0, 0, False, [True, bool(grid_needs_grad)]
        )
        return grad_images, (grad_grid if grid_needs_grad else None)

    @staticmethod
    def backward(ctx, grad2_grad_images, grad2_grad_grid):
        (grid,) = ctx.saved_tensors
        # grad_images does not depend on images (bilinear sampling is linear in them); grad_grid does.
        if (ctx.needs_input_grad[1] and grad2_grad_grid is not None) or (
            ctx.needs_input_grad[2] and grad2_grad_images is not None
        ):
            raise NotImplementedError("second-order gradients through grid_sample w.r.t. the grid")
        grad2_grad_output = None
        if ctx.needs_input_grad[0] and grad2_grad_images is not None:
            grad2_grad_output = _grid_sample(grad2_grad_images, grid)
        return grad2_grad_output, None, None, None


# ----------------------------------------------------------------------------------------------------------------


class AugmentPipe(torch.nn.Module):
    """NVIDIA's ADA pipeline: pixel blitting, general geometry, colour, image-space filtering and corruptions.

    Arguments are probability multipliers (0 disables a transform) and strengths, named and defaulted as NVIDIA's.
    Buffers: `p` (scalar float32, the overall augmentation probability, 1 at construction like NVIDIA's; trainers
    set it), `Hz_geom` (sym6 low-pass [12]), `Hz_fbank` (image-filter bank [4, 43]).
    """

    def __init__(
        self,
        xflip=0, rotate90=0, xint=0, xint_max=0.125,
        scale=0, rotate=0, aniso=0, xfrac=0, scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125,
        brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0,
        brightness_std=0.2, contrast_std=0.5, hue_max=1, saturation_std=1,
        imgfilter=0, imgfilter_bands=(1, 1, 1, 1), imgfilter_std=1,
        noise=0, cutout=0, noise_std=0.1, cutout_size=0.5,
    ):  # fmt: skip
        super().__init__()
        self.init_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.init_kwargs["imgfilter_bands"] = list(imgfilter_bands)
        self._generator: torch.Generator | None = None  # set for the duration of forward()
        self.register_buffer("p", torch.ones([]))

        # Pixel blitting: x-flip, rotation by multiples of 90 degrees, integer translation (fraction of size).
        self.xflip, self.rotate90, self.xint = float(xflip), float(rotate90), float(xint)
        self.xint_max = float(xint_max)
        # General geometry: isotropic scale (log2 std), rotation (1 = full circle), anisotropic scale (log2 std),
        # fractional translation (std, fraction of size).
        self.scale, self.rotate, self.aniso, self.xfrac = float(scale), float(rotate), float(aniso), float(xfrac)
        self.scale_std, self.rotate_max = float(scale_std), float(rotate_max)
        self.aniso_std, self.xfrac_std = float(aniso_std), float(xfrac_std)
        # Colour: brightness (std of the offset), contrast (log2 std), luma flip, hue rotation (1 = full circle),
        # saturation (log2 std).
        self.brightness, self.contrast, self.lumaflip = float(brightness), float(contrast), float(lumaflip)
        self.hue, self.saturation = float(hue), float(saturation)
        self.brightness_std, self.contrast_std = float(brightness_std), float(contrast_std)
        self.hue_max, self.saturation_std = float(hue_max), float(saturation_std)
        # Image-space filtering: per-band multipliers and log2 std of the band gains.
        self.imgfilter, self.imgfilter_bands = float(imgfilter), [float(b) for b in imgfilter_bands]
        self.imgfilter_std = float(imgfilter_std)
        # Corruptions: additive Gaussian noise (std of sigma), cutout (square side, fraction of size).
        self.noise, self.cutout = float(noise), float(cutout)
        self.noise_std, self.cutout_size = float(noise_std), float(cutout_size)

        self.register_buffer("Hz_geom", upfirdn2d.setup_filter(WAVELETS["sym6"]))
        self.register_buffer("Hz_fbank", torch.as_tensor(_imgfilter_bank(WAVELETS["sym2"]), dtype=torch.float32))
        if len(self.imgfilter_bands) != self.Hz_fbank.shape[0]:
            raise ValueError(f"imgfilter_bands needs {self.Hz_fbank.shape[0]} entries, got {imgfilter_bands}")

    def set_p(self, value: float) -> None:
        """Set the overall augmentation probability."""
        self.p.copy_(torch.as_tensor(float(value)))

    def extra_repr(self) -> str:
        names = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                 "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout"]  # fmt: skip
        enabled = ", ".join(f"{n}={getattr(self, n):g}" for n in names if getattr(self, n) > 0)
        return f"p={float(self.p):g}, {enabled or 'no transforms'}"

    # ------------------------------------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, debug_percentile=None, generator: torch.Generator | None = None):
        """Augment a batch. images: [N, C, H, W] float in [-1, 1], C in {1, 3, 4} -> same shape and dtype.

        debug_percentile: NVIDIA's debugging aid, a number in [0, 1) replacing every random magnitude by that
        percentile of its distribution (the probabilities still apply). generator: optional torch.Generator
        for the random numbers (a CPU generator works for CUDA images); torch's global RNG otherwise.
        """
        if not (torch.is_tensor(images) and images.ndim == 4 and images.is_floating_point()):
            raise ValueError("AugmentPipe expects a float tensor [N, C, H, W]")
        n, num_channels, height, width = images.shape
        if num_channels not in (1, 3, 4):
            raise ValueError(f"AugmentPipe supports 1, 3 or 4 channels (L, RGB, RGBA), got {num_channels}")
        self._generator = generator
        try:
            return self._augment(images, debug_percentile)
        finally:
            self._generator = None

    def _augment(self, images: torch.Tensor, debug_percentile) -> torch.Tensor:
        n, num_channels, height, width = images.shape
        device = images.device
        mat_dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        p = self.p.to(mat_dtype)
        ones = torch.ones([n], device=device, dtype=mat_dtype)
        pct = None
        if debug_percentile is not None:
            pct = torch.as_tensor(debug_percentile, dtype=mat_dtype, device=device)

        if any(m > 0 for m in (self.xflip, self.rotate90, self.xint, self.scale, self.rotate, self.aniso, self.xfrac)):
            images = self._apply_geometry(images, self._geometry_matrix(n, width, height, p, pct, ones))
        if any(m > 0 for m in (self.brightness, self.contrast, self.lumaflip, self.hue, self.saturation)):
            images = self._apply_color(images, self._color_matrix(n, num_channels, p, pct, ones))
        if self.imgfilter > 0:
            images = self._apply_imgfilter(images, p, pct, ones)
        if self.noise > 0:
            images = self._apply_noise(images, p, pct, ones)
        if self.cutout > 0:
            images = self._apply_cutout(images, p, pct, ones)
        return images

    def _geometry_matrix(self, n: int, width: int, height: int, p, pct, ones) -> torch.Tensor:
        """Pixel blitting and general geometry: one inverse matrix per image [N, 3, 3], G_inv @ pixel_out =
        pixel_in, in pixel units about the image centre (x right, y down)."""
        device, mat_dtype = ones.device, ones.dtype
        g_inv = torch.eye(3, device=device, dtype=mat_dtype).expand(n, 3, 3)
        if self.xflip > 0:
            i = torch.floor(self._rand([n], ones) * 2)
            i = self._select(i, self.xflip * p, 0, ones)
            i = i if pct is None else torch.full_like(i, float(torch.floor(pct * 2)))
            g_inv = g_inv @ _scale2d(1 - 2 * i, 1, ones)
        if self.rotate90 > 0:
            i = torch.floor(self._rand([n], ones) * 4)
            i = self._select(i, self.rotate90 * p, 0, ones)
            i = i if pct is None else torch.full_like(i, float(torch.floor(pct * 4)))
            g_inv = g_inv @ _rotate2d(math.pi / 2 * i, ones)
        if self.xint > 0:
            t = (self._rand([n, 2], ones) * 2 - 1) * self.xint_max
            t = self._select(t, self.xint * p, 0, ones, shape=[n, 1])
            t = t if pct is None else torch.full_like(t, float((pct * 2 - 1) * self.xint_max))
            g_inv = g_inv @ _translate2d(-torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height), ones)
        if self.scale > 0:
            s = torch.exp2(self._randn([n], ones) * self.scale_std)
            s = self._select(s, self.scale * p, 1, ones)
            s = s if pct is None else torch.full_like(s, float(torch.exp2(torch.erfinv(pct * 2 - 1) * self.scale_std)))
            g_inv = g_inv @ _scale2d(1 / s, 1 / s, ones)
        # Rotation is split into a pre- and a post-rotation around the anisotropic scaling, each with
        # probability p_rot such that P(pre or post) = rotate * p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * p).clamp(0, 1))
        if self.rotate > 0:
            theta = (self._rand([n], ones) * 2 - 1) * math.pi * self.rotate_max
            theta = self._select(theta, p_rot, 0, ones)
            theta = theta if pct is None else torch.full_like(theta, float((pct * 2 - 1) * math.pi * self.rotate_max))
            g_inv = g_inv @ _rotate2d(theta, ones)
        if self.aniso > 0:
            s = torch.exp2(self._randn([n], ones) * self.aniso_std)
            s = self._select(s, self.aniso * p, 1, ones)
            s = s if pct is None else torch.full_like(s, float(torch.exp2(torch.erfinv(pct * 2 - 1) * self.aniso_std)))
            g_inv = g_inv @ _scale2d(1 / s, s, ones)
        if self.rotate > 0:
            theta = (self._rand([n], ones) * 2 - 1) * math.pi * self.rotate_max
            theta = self._select(theta, p_rot, 0, ones)
            theta = theta if pct is None else torch.zeros_like(theta)
            g_inv = g_inv @ _rotate2d(theta, ones)
        if self.xfrac > 0:
            t = self._randn([n, 2], ones) * self.xfrac_std
            t = self._select(t, self.xfrac * p, 0, ones, shape=[n, 1])
            t = t if pct is None else torch.full_like(t, float(torch.erfinv(pct * 2 - 1) * self.xfrac_std))
            g_inv = g_inv @ _translate2d(-t[:, 0] * width, -t[:, 1] * height, ones)
        return g_inv

    def _color_matrix(self, n: int, num_channels: int, p, pct, ones) -> torch.Tensor:
        """Colour: one homogeneous matrix per image [N, 4, 4], C @ [r, g, b, 1] = colour_out."""
        device, mat_dtype = ones.device, ones.dtype
        eye4 = torch.eye(4, device=device, dtype=mat_dtype)
        color = eye4.expand(n, 4, 4)
        luma_axis = torch.tensor([1, 1, 1, 0], device=device, dtype=mat_dtype) / math.sqrt(3)
        luma_proj = torch.outer(luma_axis, luma_axis)
        if self.brightness > 0:
            b = self._randn([n], ones) * self.brightness_std
            b = self._select(b, self.brightness * p, 0, ones)
            b = b if pct is None else torch.full_like(b, float(torch.erfinv(pct * 2 - 1) * self.brightness_std))
            color = _translate3d(b, ones) @ color
        if self.contrast > 0:
            c = torch.exp2(self._randn([n], ones) * self.contrast_std)
            c = self._select(c, self.contrast * p, 1, ones)
            c = (
                c
                if pct is None
                else torch.full_like(c, float(torch.exp2(torch.erfinv(pct * 2 - 1) * self.contrast_std)))
            )
            color = _scale3d(c, ones) @ color
        if self.lumaflip > 0:
            i = torch.floor(self._rand([n, 1, 1], ones) * 2)
            i = self._select(i, self.lumaflip * p, 0, ones, shape=[n, 1, 1])
            i = i if pct is None else torch.full_like(i, float(torch.floor(pct * 2)))
            color = (eye4 - 2 * luma_proj * i) @ color  # Householder reflection of the luma axis.
        if self.hue > 0 and num_channels > 1:
            theta = (self._rand([n], ones) * 2 - 1) * math.pi * self.hue_max
            theta = self._select(theta, self.hue * p, 0, ones)
            theta = theta if pct is None else torch.full_like(theta, float((pct * 2 - 1) * math.pi * self.hue_max))
            color = _rotate3d(luma_axis, theta) @ color
        if self.saturation > 0 and num_channels > 1:
            s = torch.exp2(self._randn([n, 1, 1], ones) * self.saturation_std)
            s = self._select(s, self.saturation * p, 1, ones, shape=[n, 1, 1])
            s = (
                s
                if pct is None
                else torch.full_like(s, float(torch.exp2(torch.erfinv(pct * 2 - 1) * self.saturation_std)))
            )
            color = (luma_proj + (eye4 - luma_proj) * s) @ color
        return color

    def _apply_noise(self, images: torch.Tensor, p, pct, ones) -> torch.Tensor:
        """Additive Gaussian noise, sigma ~ |N(0, noise_std)| per image."""
        n, num_channels, height, width = images.shape
        sigma = self._randn([n, 1, 1, 1], ones).abs() * self.noise_std
        sigma = self._select(sigma, self.noise * p, 0, ones, shape=[n, 1, 1, 1])
        sigma = sigma if pct is None else torch.full_like(sigma, float(torch.erfinv(pct) * self.noise_std))
        return images + self._randn([n, num_channels, height, width], ones).to(images.dtype) * sigma.to(images.dtype)

    def _apply_cutout(self, images: torch.Tensor, p, pct, ones) -> torch.Tensor:
        """Cutout: a square of side cutout_size (fraction of the image) set to 0 at a random centre."""
        n, _, height, width = images.shape
        device, mat_dtype = ones.device, ones.dtype
        size = torch.full([n, 2, 1, 1, 1], self.cutout_size, device=device, dtype=mat_dtype)
        size = self._select(size, self.cutout * p, 0, ones, shape=[n, 1, 1, 1, 1])
        center = self._rand([n, 2, 1, 1, 1], ones)
        if pct is not None:
            size, center = torch.full_like(size, self.cutout_size), torch.full_like(center, float(pct))
        xs = (torch.arange(width, device=device, dtype=mat_dtype).reshape(1, 1, 1, -1) + 0.5) / width
        ys = (torch.arange(height, device=device, dtype=mat_dtype).reshape(1, 1, -1, 1) + 0.5) / height
        keep = ((xs - center[:, 0]).abs() >= size[:, 0] / 2) | ((ys - center[:, 1]).abs() >= size[:, 1] / 2)
        return images * keep.to(images.dtype)  # keep: [N, 1, H, W]

    # ------------------------------------------------------------------------------------------------------------

    def _rand(self, shape, like):
        gen = self._generator
        if gen is None:
            return torch.rand(shape, device=like.device).to(like.dtype)
        return torch.rand(shape, generator=gen, device=gen.device).to(like.device, like.dtype)

    def _randn(self, shape, like):
        gen = self._generator
        if gen is None:
            return torch.randn(shape, device=like.device).to(like.dtype)
        return torch.randn(shape, generator=gen, device=gen.device).to(like.device, like.dtype)

    def _select(self, value, prob, neutral, like, shape=None):
        """value where a uniform draw (one per image, broadcast via `shape`) falls below prob, else `neutral`."""
        draw = self._rand(shape or [like.shape[0]], like)
        return torch.where(draw < prob, value, torch.full_like(value, neutral))

    def _apply_geometry(self, images: torch.Tensor, g_inv: torch.Tensor) -> torch.Tensor:
        """Resample images [N, C, H, W] through g_inv [N, 3, 3]: reflect pad, 2x wavelet upsample, bilinear
        grid_sample, 2x wavelet downsample and crop. Images whose g_inv is the identity are returned unchanged."""
        n, num_channels, height, width = images.shape
        eye3 = torch.eye(3, device=images.device, dtype=g_inv.dtype)
        moved = (g_inv != eye3).flatten(1).any(dim=1)  # [N]
        if not bool(moved.any()):
            return images
        one = g_inv.new_ones([1])
        cx, cy = (width - 1) / 2, (height - 1) / 2

        # Padding: enough for where the output corners land in the input, plus the filter's support.
        corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=images.device,
                               dtype=g_inv.dtype)  # fmt: skip
        landed = (g_inv @ corners.t())[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, N * 4]
        margin = torch.cat([-landed, landed]).max(dim=1).values  # [x0, y0, x1, y1]
        hz_pad = self.Hz_geom.shape[0] // 4
        margin = margin + torch.tensor([2 * hz_pad - cx, 2 * hz_pad - cy] * 2, device=images.device, dtype=g_inv.dtype)
        limit = torch.tensor([width - 1, height - 1] * 2, device=images.device, dtype=g_inv.dtype)
        mx0, my0, mx1, my1 = (int(m) for m in torch.minimum(margin.clamp(min=0), limit).ceil().tolist())

        x = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
        g = _translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, one) @ g_inv  # the centre moved with the padding

        # Upsample 2x; pixel centres of the fine grid sit at 2 * x + 0.5 - 0.5 of the coarse one.
        x = upfirdn2d.upsample2d(x, self.Hz_geom.to(x.dtype), up=2)
        g = _scale2d(2, 2, one) @ g @ _scale2d(0.5, 0.5, one)
        g = _translate2d(-0.5, -0.5, one) @ g @ _translate2d(0.5, 0.5, one)

        # Resample the fine grid of the padded-by-hz_pad output, in grid_sample's normalised coordinates.
        out_shape = [n, num_channels, (height + hz_pad * 2) * 2, (width + hz_pad * 2) * 2]
        to_norm = _scale2d(2 / x.shape[3], 2 / x.shape[2], one)
        from_norm = _scale2d(out_shape[3] / 2, out_shape[2] / 2, one)
        g = to_norm @ g @ from_norm
        grid = F.affine_grid(g[:, :2, :].to(x.dtype), out_shape, align_corners=False)
        x = _grid_sample(x, grid)

        x = upfirdn2d.downsample2d(x, self.Hz_geom.to(x.dtype), down=2, padding=-hz_pad * 2, flip_filter=True)
        return torch.where(moved.reshape(n, 1, 1, 1), x, images)

    @staticmethod
    def _apply_color(images: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] through the homogeneous colour matrices color [N, 4, 4] (alpha untouched)."""
        n, num_channels, height, width = images.shape
        color = color.to(images.dtype)
        flat = images.reshape(n, num_channels, height * width)
        if num_channels == 1:  # collapse to luma: mean over the RGB rows of (row sum, offset)
            gain = color[:, :3, :3].sum(dim=2).mean(dim=1).reshape(n, 1, 1)
            offset = color[:, :3, 3].mean(dim=1).reshape(n, 1, 1)
            flat = flat * gain + offset
        else:
            rgb = color[:, :3, :3] @ flat[:, :3] + color[:, :3, 3:]
            flat = rgb if num_channels == 3 else torch.cat([rgb, flat[:, 3:]], dim=1)
        return flat.reshape(n, num_channels, height, width)

    def _apply_imgfilter(self, images, p, pct, ones):
        """Amplify or attenuate each octave band by a random gain (power-normalised); images [N, C, H, W]."""
        n, num_channels, height, width = images.shape
        num_bands, taps = self.Hz_fbank.shape
        # Share of the image power per band for a 1/f spectrum, used to keep the expected power unchanged.
        expected_power = torch.tensor([10, 1, 1, 1], device=images.device, dtype=ones.dtype) / 13
        gains = torch.ones([n, num_bands], device=images.device, dtype=ones.dtype)
        chosen = torch.zeros([n], device=images.device, dtype=torch.bool)
        for band, band_strength in enumerate(self.imgfilter_bands):
            t_i = torch.exp2(self._randn([n], ones) * self.imgfilter_std)
            hit = self._rand([n], ones) < self.imgfilter * p * band_strength
            t_i = torch.where(hit, t_i, torch.ones_like(t_i))
            if pct is not None:
                level = float(torch.exp2(torch.erfinv(pct * 2 - 1) * self.imgfilter_std)) if band_strength > 0 else 1
                t_i, hit = torch.full_like(t_i, level), torch.full_like(hit, band_strength > 0)
            chosen = chosen | hit
            t = torch.ones([n, num_bands], device=images.device, dtype=ones.dtype)
            t[:, band] = t_i
            gains = gains * t / (expected_power * t.square()).sum(dim=-1, keepdim=True).sqrt()
        if not bool(chosen.any()):
            return images
        kernel = (gains @ self.Hz_fbank.to(gains.dtype)).to(images.dtype)  # [N, taps]
        kernel = kernel.repeat_interleave(num_channels, dim=0).reshape(n * num_channels, 1, 1, taps)
        pad = taps // 2
        if min(height, width) <= pad:
            raise ValueError(f"imgfilter needs images larger than {pad} pixels, got {height}x{width}")
        x = F.pad(images.reshape(1, n * num_channels, height, width), [pad] * 4, mode="reflect")
        x = F.conv2d(x, kernel, groups=n * num_channels)  # along x (the filters are symmetric)
        x = F.conv2d(x, kernel.transpose(2, 3), groups=n * num_channels)  # along y
        x = x.reshape(n, num_channels, height, width)
        return torch.where(chosen.reshape(n, 1, 1, 1), x, images)


# ----------------------------------------------------------------------------------------------------------------


class AdaController:
    """Adjusts `augment_pipe.p` from the sign of D's real logits (NVIDIA's ADA heuristic).

    The overfitting statistic r_t = E[sign(D(real))] is accumulated over D's real passes; every `interval`
    training iterations p moves by sign(r_t - target) * batch_size * interval / (kimg * 1000), so that p can
    change by 1 in `kimg` thousand images, and never drops below 0.

    Args:
        augment_pipe: the AugmentPipe whose `p` buffer is adjusted.
        target:       target value of r_t (0.6 in the ADA paper).
        interval:     training iterations between adjustments (4).
        kimg:         thousands of images for p to change by 1 (500; the trainer passes 100 after a resume).
        batch_size:   the global batch size (all ranks together) of one training iteration.
    """

    def __init__(self, augment_pipe: AugmentPipe, target=0.6, interval=4, kimg=500, batch_size=None):
        if batch_size is None or int(batch_size) <= 0:
            raise ValueError(f"AdaController needs the global batch size (a positive integer), got {batch_size}")
        if int(interval) <= 0 or float(kimg) <= 0:
            raise ValueError(f"interval and kimg must be positive, got interval={interval}, kimg={kimg}")
        self.augment_pipe = augment_pipe
        self.target = float(target)
        self.interval = int(interval)
        self.kimg = float(kimg)
        self.batch_size = int(batch_size)
        self.num_iterations = 0  # step() calls so far
        self.last_sign: float | None = None  # r_t of the latest update (for logging)
        self._stats: torch.Tensor | None = None  # float64 [sum of signs, number of logits] since the last update

    @property
    def adjust_size(self) -> float:
        """How far one update moves p: batch_size * interval / (kimg * 1000)."""
        return self.batch_size * self.interval / (self.kimg * 1000)

    @property
    def p(self) -> float:
        return float(self.augment_pipe.p)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add the signs of D's logits on real images (any shape) to the running statistic (no host sync)."""
        signs = real_logits.detach().sign().to(torch.float64)
        count = torch.full([], float(signs.numel()), dtype=torch.float64, device=signs.device)
        stats = torch.stack([signs.sum(), count])
        self._stats = stats if self._stats is None else self._stats + stats.to(self._stats.device)

    def step(self) -> float | None:
        """Call once per training iteration: every `interval`-th call runs `update()` and returns the new p."""
        self.num_iterations += 1
        if self.num_iterations % self.interval == 0:
            return self.update()
        return None

    def update(self) -> float:
        """Reduce the statistic across ranks, move p and reset the statistic. Every rank must call it together."""
        device = self.augment_pipe.p.device
        stats = self._stats.to(device) if self._stats is not None else torch.zeros(2, dtype=torch.float64,
                                                                                    device=device)  # fmt: skip
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        self._stats = None
        total, count = stats.tolist()
        if count == 0 or not math.isfinite(total):
            return self.p  # nothing observed (or non-finite logits): keep p
        self.last_sign = total / count
        adjust = float(np.sign(self.last_sign - self.target)) * self.adjust_size
        with torch.no_grad():
            self.augment_pipe.p.copy_((self.augment_pipe.p + adjust).clamp(min=0))
        return self.p

    def state_dict(self) -> dict:
        """Counters and the pending statistic (p itself lives in the augment pipe's state dict)."""
        stats = None if self._stats is None else self._stats.detach().cpu().tolist()
        return {"num_iterations": self.num_iterations, "last_sign": self.last_sign, "stats": stats}

    def load_state_dict(self, state: dict) -> None:
        self.num_iterations = int(state["num_iterations"])
        self.last_sign = state["last_sign"]
        stats = state.get("stats")
        self._stats = None if stats is None else torch.tensor(stats, dtype=torch.float64,
                                                              device=self.augment_pipe.p.device)  # fmt: skip

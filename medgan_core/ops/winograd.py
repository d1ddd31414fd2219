"""3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2016), for CPU inference.

Each 4x4 output tile comes from a 6x6 input tile: `Y = A^T [(G g G^T) . (B^T d B)] A`, so the channel mixing is
36 matrix products over tiles, [tiles, C_in] @ [C_in, C_out], with 36 multiplies per tile instead of 144. On
StyleGAN's 256- and 512-channel layers (the synthesis network's low resolutions) that runs in 0.4-0.6x the time of
oneDNN's direct convolution on a 2-core CPU (benchmarks/README.md, issue 18); with fewer channels the transforms,
which only move memory, cost about what the products save, and `pays()` says no.

The transforms use the matrices' small integer coefficients (B^T, A^T); the kernel transform (G, with 1/6 and
1/24) is done once per weight version in float64. The result agrees with `conv2d` to float32 rounding: the
largest error is 1e-6 to 1e-5 of the output's largest magnitude (oneDNN's direct convolution: ~3e-7), far below
what an 8-bit image resolves (4e-3) and within the 1e-5 the parity tests allow.
"""

from __future__ import annotations

import functools
import weakref

import torch
import torch.nn.functional as F

# F(4x4, 3x3) with interpolation points 0, +-1, +-2 (Lavin & Gray 2016, section 4.2).
_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))  # fmt: skip
_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))  # fmt: skip
_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))
TILE = 4  # output pixels per tile side; the input tile is TILE + 2
MIN_CHANNELS = 256  # `pays()`: the narrowest layer (in or out) taken; benchmarks/bench_winograd.py --generator
CHUNK_BYTES = 64 << 20  # transformed tiles per pass (several buffers of this size are alive at once)

# Kernel transforms by id of the weight tensor: (weak reference, what it was computed from, the transform). An
# entry goes when its tensor does; it is recomputed when the tensor changed in place (its version moves on). A
# 512-channel layer keeps 36 x 512 x 512 floats (38 MB) here; a 256x256 G about 120 MB in all.
_kernel_cache: dict[int, tuple] = {}


def pays(in_channels: int, out_channels: int, height: int, width: int) -> bool:
    """Whether the Winograd path is the faster one for a 3x3, stride-1, padding-1 convolution of this shape.

    At least 256 channels in and out, from 8x8 on. Measured on a 2-core CPU (benchmarks/README.md): per layer,
    0.4-0.6x oneDNN's time at 512 channels (8x8 to 64x64) and 256 channels at 16x16 to 64x64, 0.65-0.75 at 8x8
    (batch 8 and 32); 128 channels 0.7-0.9 at batch 8 with its buffers kept in the heap, but up to 1.1 at batch 32
    and 1.2-1.6 with glibc as is. Over the whole G (256x256, inside `heap_reuse` as generation runs it) taking it
    from 256 channels on was the fastest rule with both allocators.
    """
    if height % TILE or width % TILE or height * width < 64:
        return False
    return min(in_channels, out_channels) >= MIN_CHANNELS


def kernel_transform(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, 3, 3] correlation kernel -> [36, I, O]: `G g G^T` per (O, I) pair, computed in float64."""
    g = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    out_channels, in_channels = weight.shape[:2]
    kernel = weight.double().permute(2, 3, 1, 0).reshape(3, -1)  # [kh, kw * I * O]
    rows = (g @ kernel).reshape(6, 3, -1)  # G g: [6, kw, I * O]
    u = torch.matmul(g, rows)  # (G g) G^T: [6, 6, I * O]
    return u.reshape(36, in_channels, out_channels).to(weight.dtype)


def cached_kernel_transform(weight: torch.Tensor) -> torch.Tensor:
    """`kernel_transform(weight)`, kept while `weight` is alive and not changed in place."""
    key = (weight._version, weight.data_ptr(), weight.dtype, weight.device)
    hit = _kernel_cache.get(id(weight))
    if hit is not None and hit[0]() is weight and hit[1] == key:
        return hit[2]
    transformed = kernel_transform(weight.detach())
    forget = functools.partial(_kernel_cache.pop, id(weight), None)
    _kernel_cache[id(weight)] = (weakref.ref(weight, lambda _: forget()), key, transformed)
    return transformed


def conv3x3(x: torch.Tensor, transformed: torch.Tensor) -> torch.Tensor:
    """`conv2d(x, weight, padding=1)` for a 3x3 kernel given as `kernel_transform(weight)`.

    Args:
        x:           [N, I, H, W] with H and W multiples of 4; channels-last is the fast layout.
        transformed: [36, I, O] from `kernel_transform` / `cached_kernel_transform`.

    Returns:
        [N, O, H, W], channels-last.
    """
    batch, in_channels, height, width = x.shape
    out_channels = transformed.shape[2]
    if height % TILE or width % TILE or transformed.shape[:2] != (36, in_channels):
        raise ValueError(f"x {tuple(x.shape)} and a transformed kernel {tuple(transformed.shape)} do not fit")
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # [N, H + 2, W + 2, I]
    shape = (batch, out_channels, height, width)
    y = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    tile_bytes = 36 * (height // TILE) * (width // TILE) * max(in_channels, out_channels) * x.element_size()
    step = max(1, CHUNK_BYTES // tile_bytes)  # samples per pass: bounds the transformed tiles' memory
    for start in range(0, batch, step):
        _tiles_conv(padded[start : start + step], transformed, y[start : start + step])
    return y


def _tiles_conv(padded: torch.Tensor, transformed: torch.Tensor, y: torch.Tensor) -> None:
    """y = the convolution of padded ([N, H + 2, W + 2, I]) into y ([N, O, H, W], channels-last)."""
    batch, height, width, in_channels = padded.shape[0], y.shape[2], y.shape[3], padded.shape[3]
    out_channels = transformed.shape[2]
    rows, cols = height // TILE, width // TILE

    # Input transform B^T d B, rows then columns: [6, 6, N, rows, cols, I].
    along_y = padded.new_empty((6, batch, rows, width + 2, in_channels))
    _combine(_BT, lambda i: padded[:, i : i + TILE * rows : TILE], along_y)
    tiles = padded.new_empty((6, 6, batch, rows, cols, in_channels))
    _combine(_BT, lambda j: along_y[:, :, :, j : j + TILE * cols : TILE], tiles.transpose(0, 1))

    # Channel mixing: one [tiles, I] @ [I, O] product per position in the 6x6 transformed tile.
    products = torch.bmm(tiles.view(36, -1, in_channels), transformed).view(6, 6, batch, rows, cols, out_channels)

    # Output transform A^T M A, written into the channels-last output's 4x4 tiles.
    half = padded.new_empty((TILE, 6, batch, rows, cols, out_channels))
    _combine(_AT, lambda i: products[i], half)
    tiled = y.permute(0, 2, 3, 1).view(batch, rows, TILE, cols, TILE, out_channels)
    _combine(_AT, lambda j: half[:, j], tiled.permute(4, 2, 0, 1, 3, 5))  # [x-in-tile, y-in-tile, N, ...]


def _combine(matrix, part, out: torch.Tensor) -> None:
    """out[a] = sum_i matrix[a][i] * part(i), skipping zero coefficients."""
    for a, row in enumerate(matrix):
        terms = [(float(coef), i) for i, coef in enumerate(row) if coef != 0]
        unit = next((term for term in terms if term[0] == 1), None)
        if unit is not None and len(terms) > 1:  # start from a unit term: one add, not a multiply and an add
            rest = [term for term in terms if term is not unit]
            torch.add(part(unit[1]), part(rest[0][1]), alpha=rest[0][0], out=out[a])
            rest = rest[1:]
        else:
            torch.mul(part(terms[0][1]), terms[0][0], out=out[a])
            rest = terms[1:]
        for coef, i in rest:
            out[a].add_(part(i), alpha=coef)

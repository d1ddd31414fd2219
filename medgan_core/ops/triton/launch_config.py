"""Block sizes and warp counts for the kernels, on a GPU and under Triton's CPU interpreter.

On a GPU, blocks are sized for memory throughput; the interpreter runs each program as vectorized NumPy, so
there a few large programs are much faster than many small ones.
"""

from __future__ import annotations


def _pow2_at_least(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def elementwise(numel: int, on_gpu: bool) -> tuple[int, int]:
    """(BLOCK, num_warps) for an element-wise kernel over `numel` elements."""
    if not on_gpu:
        return min(max(_pow2_at_least(numel), 16), 1 << 16), 4
    return 1024, 4


def bias_act(numel: int, inner: int, on_gpu: bool) -> tuple[bool, int, int]:
    """(ROW_MODE, BLOCK, num_warps) for bias_act over `numel` elements whose bias stride is `inner`.

    Rows (one channel each) when a row fills at least one block; flat blocks otherwise.
    """
    block, num_warps = elementwise(numel, on_gpu)
    if on_gpu and inner >= block:
        return True, block, num_warps
    if not on_gpu and inner >= 4096:
        return True, min(_pow2_at_least(inner), 1 << 16), num_warps
    return False, block, num_warps


def upfirdn2d(num_planes: int, q_h: int, q_w: int, on_gpu: bool) -> tuple[int, int, int, int]:
    """(BLOCK_NC, BLOCK_QY, BLOCK_QX, num_warps) for `num_planes` (= N * C) images of q_h x q_w phase indices.

    A GPU program covers about 1024 outputs per phase (one plane of a large image, or several small planes);
    an interpreter program covers up to 2**16 elements.
    """
    block_qx = min(_pow2_at_least(q_w), 64)
    block_qy = min(_pow2_at_least(q_h), 16 if on_gpu else 64)
    budget = (1024 if on_gpu else 1 << 16) // (block_qy * block_qx)
    block_nc = max(min(_pow2_at_least(num_planes), budget), 1)
    if not on_gpu:
        return block_nc, block_qy, block_qx, 4
    size = block_nc * block_qy * block_qx
    num_warps = 4 if size >= 512 else (2 if size >= 128 else 1)
    return block_nc, block_qy, block_qx, num_warps

"""Reference ops for StyleGAN2 with NVIDIA's signatures: bias_act, upfirdn2d, conv2d_resample, modulated_conv2d.

Each is plain PyTorch (CPU and CUDA, float16/32/64, first and second derivatives); `impl='auto'` hands CUDA
tensors to a fused Triton kernel (`medgan_core.ops.triton`), as `medgan_core.ops.dispatch.use_triton()` decides.
`winograd` runs the wide 3x3 convolutions of CPU inference (`modulated_conv2d.modulated_conv2d_bias_act`).
"""

from medgan_core.ops import bias_act, conv2d_resample, dispatch, modulated_conv2d, upfirdn2d, winograd

__all__ = ["bias_act", "conv2d_resample", "dispatch", "modulated_conv2d", "upfirdn2d", "winograd"]

"""The fused ops as torch.library custom operators (schema, fake kernels, autograd), and the dispatch rules."""

from __future__ import annotations

import warnings

import pytest
import torch

from medgan_core.ops import bias_act, dispatch, upfirdn2d
from medgan_core.ops import triton as fused
from medgan_core.ops.triton import custom_ops

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module", autouse=True)
def kernels_runnable():
    if DEVICE == "cpu":
        fused.use_interpreter(True)
    yield


def _x(*shape, seed=0, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen).to(DEVICE).requires_grad_(requires_grad)


@pytest.mark.parametrize(
    "act, clamp, channels_last",
    [("lrelu", -1.0, False), ("swish", 0.5, True), ("linear", 2.0, False)],
)
def test_bias_act_ops_pass_opcheck(act, clamp, channels_last):
    x = _x(2, 3, 4, 5, requires_grad=True)
    if channels_last:
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    b = _x(3, seed=1, requires_grad=True)
    dy = _x(2, 3, 4, 5, seed=2, requires_grad=True)
    params = (1, act, 0.2, 1.4, clamp)
    torch.library.opcheck(custom_ops.bias_act, (x, b, *params))
    torch.library.opcheck(custom_ops.bias_act, (x, None, *params))
    torch.library.opcheck(custom_ops.bias_act_grad, (dy, x, b, *params))
    checks = ("test_schema", "test_faketensor")  # grad2 has no derivative of its own (third order)
    torch.library.opcheck(custom_ops.bias_act_grad2, (dy.detach(), dy.detach(), x.detach(), b.detach(), *params),
                          test_utils=checks)  # fmt: skip


@pytest.mark.parametrize("up, down, pads", [(2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (1, 1, (-1, 2, 0, 1))])
def test_upfirdn2d_op_passes_opcheck(up, down, pads):
    x = _x(2, 3, 5, 6, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=DEVICE)
    torch.library.opcheck(custom_ops.upfirdn2d, (x, f, up, up, down, down, *pads, False, 2.0))
    fs = upfirdn2d.setup_filter([1, 3, 3, 1], device=DEVICE, separable=True)
    torch.library.opcheck(custom_ops.upfirdn2d, (x, fs, up, up, down, down, *pads, True, 1.0))


def test_dispatch_forced_and_auto_choices():
    x = _x(1, 2, 3, 3)
    assert dispatch.use_triton("bias_act", "ref", x) is False
    assert dispatch.use_triton("bias_act", "triton", x) is True
    assert dispatch.use_triton("upfirdn2d", "triton", x) is True
    assert dispatch.use_triton("bias_act", "auto", x) is x.is_cuda  # 'auto': Triton for CUDA tensors only
    with dispatch.prefer("triton"):
        assert dispatch.use_triton("bias_act", "auto", x) is True
        assert dispatch.use_triton("bias_act", "ref", x) is False
        with dispatch.prefer("ref"):  # blocks nest; the innermost wins
            assert dispatch.use_triton("bias_act", "auto", x) is False
        assert dispatch.use_triton("bias_act", "auto", x) is True
    with dispatch.prefer("ref"):
        assert dispatch.use_triton("bias_act", "auto", x) is False
    with pytest.raises(ValueError, match="impl must be one of"):
        dispatch.use_triton("bias_act", "cuda", x)


def test_reference_ops_route_to_the_kernels_when_forced():
    x = _x(2, 3, 4, 4)
    b = _x(3, seed=1)
    got = bias_act.bias_act(x, b, act="lrelu", impl="triton")
    assert torch.allclose(got, bias_act.bias_act(x, b, act="lrelu", impl="ref"), rtol=1e-6, atol=1e-6)
    # The custom op shows up in the autograd graph, so the kernel (not the reference) ran.
    x.requires_grad_()
    assert "medgan_bias_act" in bias_act.bias_act(x, b, act="lrelu", impl="triton").grad_fn.name()
    assert "medgan" not in bias_act.bias_act(x, b, act="lrelu", impl="ref").grad_fn.name()
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=DEVICE)
    assert "medgan_upfirdn2d" in upfirdn2d.upsample2d(x, f, impl="triton").grad_fn.name()


def test_cpu_tensor_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.randn(1, 2, 3, 3)
    with pytest.raises(RuntimeError, match="needs a CUDA tensor"):
        dispatch.use_triton("bias_act", "triton", x)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        custom_ops.bias_act(x, None, 1, "linear", 0.0, 1.0, -1.0)


def test_missing_triton_warns_once_and_falls_back(monkeypatch):
    """A CUDA tensor with Triton missing is a fixable fallback: one warning per op, then silence."""
    dispatch._warn_no_triton.cache_clear()
    monkeypatch.setattr(fused, "is_available", lambda: False)
    cuda_like = torch.empty(1, device="meta")
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    with pytest.warns(RuntimeWarning, match="triton is not installed"):
        assert dispatch.use_triton("bias_act", "auto", cuda_like) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dispatch.use_triton("bias_act", "auto", cuda_like) is False  # no second warning
    with pytest.raises(RuntimeError, match="install triton"):
        dispatch.use_triton("bias_act", "triton", cuda_like)
    dispatch._warn_no_triton.cache_clear()


def test_package_imports_without_triton():
    """`triton` is optional: with it hidden (an import of it fails), the package imports and the reference ops
    run."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['triton'] = None\n"
        "import torch\n"
        "from medgan_core.ops import bias_act, upfirdn2d, dispatch\n"
        "from medgan_core.ops import triton as fused\n"
        "assert not fused.is_available()\n"
        "x = torch.randn(1, 2, 4, 4)\n"
        "y = bias_act.bias_act(x, torch.zeros(2), act='lrelu')\n"
        "z = upfirdn2d.upsample2d(x, upfirdn2d.setup_filter([1, 3, 3, 1]))\n"
        "assert y.shape == x.shape and z.shape == (1, 2, 8, 8)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_triton_package_never_imports_the_reference_ops():
    """One direction only: the public ops import the kernels, the kernel package imports no reference op."""
    import ast
    import pathlib

    package = pathlib.Path(fused.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("medgan_core.ops"):
                    assert name.startswith("medgan_core.ops.triton"), f"{path.name} imports {name}"

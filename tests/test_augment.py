"""AugmentPipe and AdaController: transforms against closed forms, NVIDIA's buffers, gradients, ADA rule, ranks."""

from __future__ import annotations

import io
import json
import math
import pickletools
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.special
import torch
import torch.nn.functional as F

from medgan_core.augment import AdaController, AugmentPipe, augpipe_specs, make_augment_pipe

PRESETS = ["blit", "geom", "color", "filter", "noise", "cutout", "bgc", "bgcf", "bgcfn", "bgcfnc"]


def _random_images(n=4, c=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand([n, c, size, size], generator=g) * 2 - 1


def _cosine_image(c=1, size=32, cycles=1):
    """A band-limited test image: a product of cosines with `cycles` periods across the image, in [-0.8, 0.8]."""
    pos = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 * math.pi * cycles
    img = 0.8 * torch.cos(pos + 0.3)[None, :] * torch.cos(pos + 0.7)[:, None]
    return img.expand(1, c, size, size).clone()


def _pipe(**kwargs) -> AugmentPipe:
    pipe = AugmentPipe(**kwargs)
    pipe.set_p(1)
    return pipe


# ---------------------------------------------------------------------------------------------------------------
# Presets, identity, shapes, determinism


def test_presets_are_nvidia_multipliers():
    geom_blit = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1)
    color = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    assert augpipe_specs["bgc"] == {**geom_blit, **color}
    assert augpipe_specs["bgcfnc"] == {**geom_blit, **color, "imgfilter": 1, "noise": 1, "cutout": 1}
    assert augpipe_specs["filter"] == {"imgfilter": 1}
    pipe = make_augment_pipe()
    assert pipe.hue == 1 and pipe.imgfilter == 0 and pipe.scale_std == 0.2 and pipe.contrast_std == 0.5
    assert make_augment_pipe("bgc", xflip=0).xflip == 0
    with pytest.raises(ValueError, match="bgcfnc"):
        make_augment_pipe("nope")


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("channels", [1, 3])
def test_p_zero_is_exact_identity(preset, channels):
    pipe = make_augment_pipe(preset)
    pipe.set_p(0)
    x = _random_images(c=channels)
    assert torch.equal(pipe(x), x)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_preset_runs_and_keeps_shape(size, channels):
    x = _random_images(n=3, c=channels, size=size)
    for preset in PRESETS:
        pipe = make_augment_pipe(preset)
        pipe.set_p(0.8)
        y = pipe(x, generator=torch.Generator().manual_seed(1))
        assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all(), preset
        assert not torch.equal(y, x), preset


def test_seeded_runs_are_identical():
    pipe = make_augment_pipe("bgcfnc")
    pipe.set_p(0.7)
    x = _random_images()
    a = pipe(x, generator=torch.Generator().manual_seed(5))
    b = pipe(x, generator=torch.Generator().manual_seed(5))
    c = pipe(x, generator=torch.Generator().manual_seed(6))
    torch.manual_seed(3)
    d = pipe(x)
    torch.manual_seed(3)
    e = pipe(x)
    assert torch.equal(a, b) and torch.equal(d, e) and not torch.equal(a, c)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        _pipe(xflip=1)(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="imgfilter"):
        _pipe(imgfilter=1)(torch.zeros(1, 1, 16, 16))


# ---------------------------------------------------------------------------------------------------------------
# Pixel blitting and general geometry


def test_xint_equals_shifted_image_in_interior():
    x = _random_images(n=2, c=3)
    # debug_percentile 0.9 -> t = (2 * 0.9 - 1) * xint_max = 0.1 of the size -> round(3.2) = 3 pixels right and down.
    y = _pipe(xint=1)(x, debug_percentile=0.9)
    shifted = torch.roll(x, shifts=(3, 3), dims=(2, 3))
    torch.testing.assert_close(y[..., 3:, 3:], shifted[..., 3:, 3:], atol=2e-5, rtol=0)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rotate90_matches_rot90(k):
    # NVIDIA executes blits through the same wavelet resampler as general geometry; sym6 is not symmetric, so a
    # mirror or quarter turn is exact only up to a sub-pixel phase error (about 2 % of the amplitude for one cycle
    # per image): compare on band-limited images and require the chosen k to be by far the best match.
    x = _cosine_image(c=1, size=32, cycles=1) + 0.3 * _cosine_image(c=1, size=32, cycles=2).transpose(2, 3).flip(3)
    y = _pipe(rotate90=1)(x, debug_percentile=k / 4 + 0.1)
    errors = [float((y - torch.rot90(x, j, dims=(2, 3))).abs().max()) for j in range(4)]
    assert errors[k] < 0.04 and all(errors[j] > 10 * errors[k] for j in range(4) if j != k)


def test_xflip_matches_flip_per_image():
    x = _cosine_image(c=3, cycles=1) + 0.3 * _cosine_image(c=3, cycles=2).transpose(2, 3).flip(3)
    x = x.repeat(16, 1, 1, 1)
    y = _pipe(xflip=1)(x, generator=torch.Generator().manual_seed(0))
    identical = (y == x).flatten(1).all(dim=1)
    flipped = (y - x.flip(3)).abs().flatten(1).amax(dim=1) < 0.04
    assert bool((identical ^ flipped).all()) and 0 < int(flipped.sum()) < 16  # each image either kept or flipped
    torch.testing.assert_close(_pipe(xflip=1)(x[:1], debug_percentile=0.75), x[:1].flip(3), atol=0.04, rtol=0)


@pytest.mark.parametrize("name", ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac"])
def test_geometry_keeps_constants_and_mean(name):
    pipe = _pipe(**{name: 1})
    # A constant image stays exactly that constant (reflect padding, unit-DC filters, bilinear weights sum to 1).
    flat = torch.full([8, 3, 32, 32], 0.37)
    torch.testing.assert_close(pipe(flat, generator=torch.Generator().manual_seed(2)), flat, atol=1e-6, rtol=0)
    # A smooth image keeps its mean up to what enters or leaves the frame: well under the image's std of 0.1.
    x = (_cosine_image(c=1, size=64, cycles=1) * 0.3 + 0.2).repeat(8, 1, 1, 1)
    y = pipe(x, generator=torch.Generator().manual_seed(2))
    assert y.shape == x.shape and not torch.equal(y, x)
    assert float((y.mean(dim=(1, 2, 3)) - x.mean()).abs().max()) < 0.05


def _waves(x, y):
    """A smooth pattern of two plane waves (about one cycle per 64 pixels) at centred pixel coordinates (x, y)."""
    return 0.5 * torch.cos(2 * math.pi * (0.016 * x + 0.010 * y) + 0.3) + 0.3 * torch.cos(
        2 * math.pi * (-0.006 * x + 0.018 * y) + 1.1
    )


@pytest.mark.parametrize("name", ["scale", "rotate", "aniso", "xfrac"])
def test_general_geometry_matches_closed_form(name):
    # out(p) = in(G_inv p) with G_inv from the debug percentile's parameters, evaluated analytically on a smooth
    # pattern, where the source point lies well inside the image (no reflect padding involved).
    size, pct = 64, 0.8
    centre = (size - 1) / 2
    y, x = torch.meshgrid(torch.arange(size) - centre, torch.arange(size) - centre, indexing="ij")
    x, y = x.double(), y.double()
    log2_scale = _erfinv(2 * pct - 1) * 0.2  # scale_std = aniso_std = 0.2
    theta = (2 * pct - 1) * math.pi  # pre-rotation; the post-rotation is 0 under debug_percentile
    shift = _erfinv(2 * pct - 1) * 0.125 * size  # xfrac_std = 0.125 of the size
    source = {
        "scale": (x / 2**log2_scale, y / 2**log2_scale),
        "rotate": (math.cos(theta) * x - math.sin(theta) * y, math.sin(theta) * x + math.cos(theta) * y),
        "aniso": (x / 2**log2_scale, y * 2**log2_scale),
        "xfrac": (x - shift, y - shift),
    }[name]
    inside = (source[0].abs() < centre - 3) & (source[1].abs() < centre - 3)
    out = _pipe(**{name: 1})(_waves(x, y).float()[None, None], debug_percentile=pct)[0, 0]
    error = (out - _waves(*source).float()).abs()[inside]
    assert int(inside.sum()) > size * size // 3 and float(error.max()) < 0.01


# ---------------------------------------------------------------------------------------------------------------
# Colour


def _erfinv(v):
    return float(scipy.special.erfinv(v))


def test_brightness_adds_constant():
    x = _random_images(c=3)
    y = _pipe(brightness=1)(x, debug_percentile=0.8)
    torch.testing.assert_close(y, x + 0.2 * _erfinv(0.6), atol=1e-6, rtol=0)
    y = _pipe(brightness=1)(x, generator=torch.Generator().manual_seed(0))
    offset = (y - x).flatten(1)
    assert float((offset - offset[:, :1]).abs().max()) < 1e-6 and float(offset[:, 0].abs().max()) > 0


@pytest.mark.parametrize("channels", [1, 3])
def test_contrast_scales_about_mid_grey(channels):
    # NVIDIA's contrast multiplies the colour vector: it scales about 0, the mid-grey of [-1, 1].
    x = _random_images(c=channels)
    y = _pipe(contrast=1)(x, debug_percentile=0.3)
    torch.testing.assert_close(y, x * 2 ** (0.5 * _erfinv(-0.4)), atol=1e-6, rtol=0)


def test_lumaflip_reflects_luma_axis():
    x = _random_images(c=3)
    y = _pipe(lumaflip=1)(x, debug_percentile=0.75)
    torch.testing.assert_close(y, x - 2 * x.mean(dim=1, keepdim=True), atol=1e-6, rtol=0)  # x - 2 v (v . x)
    gray = _random_images(c=1)
    torch.testing.assert_close(_pipe(lumaflip=1)(gray, debug_percentile=0.75), -gray, atol=1e-6, rtol=0)


def test_saturation_scales_chroma():
    x = _random_images(c=3)
    y = _pipe(saturation=1)(x, debug_percentile=0.7)
    s = 2 ** _erfinv(0.4)
    mean = x.mean(dim=1, keepdim=True)
    torch.testing.assert_close(y, mean + s * (x - mean), atol=1e-5, rtol=0)


def test_hue_rotates_about_luma_axis():
    x = _random_images(c=3)
    y = _pipe(hue=1)(x, debug_percentile=0.75)  # theta = pi / 2
    torch.testing.assert_close(y.mean(dim=1), x.mean(dim=1), atol=1e-5, rtol=0)
    chroma_x, chroma_y = x - x.mean(dim=1, keepdim=True), y - y.mean(dim=1, keepdim=True)
    torch.testing.assert_close(chroma_y.norm(dim=1), chroma_x.norm(dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close((chroma_x * chroma_y).sum(dim=1), torch.zeros_like(x[:, 0]), atol=1e-5, rtol=0)


def test_grayscale_skips_hue_and_saturation():
    x = _random_images(c=1)
    pipe = _pipe(hue=1, saturation=1)
    state = torch.get_rng_state()
    assert torch.equal(pipe(x), x)
    assert torch.equal(torch.get_rng_state(), state)  # no random numbers drawn for them


@pytest.mark.parametrize("debug_percentile", [None, 0.8])
def test_gray_rgb_equals_grayscale_per_channel(debug_percentile):
    # For a gray RGB image every colour transform maps gray to gray (hue and saturation act as the identity on the
    # luma axis), and the colour draws for brightness, contrast and luma flip come first in the same order, so
    # with one seed each channel of the RGB result equals the 1-channel result.
    gray = _random_images(n=8, c=1)
    pipe = make_augment_pipe("color")
    pipe.set_p(1)
    y1 = pipe(gray, debug_percentile=debug_percentile, generator=torch.Generator().manual_seed(4))
    y3 = pipe(gray.repeat(1, 3, 1, 1), debug_percentile=debug_percentile, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(y3, y1.expand_as(y3), atol=1e-5, rtol=0)
    assert not torch.allclose(y1, gray)


# ---------------------------------------------------------------------------------------------------------------
# Filtering and corruptions


def test_imgfilter_bank_reconstructs_and_unit_gains_are_identity():
    pipe = AugmentPipe()
    bank = pipe.Hz_fbank.double()
    delta = torch.zeros(bank.shape[1], dtype=torch.float64)
    delta[bank.shape[1] // 2] = 1
    torch.testing.assert_close(bank.sum(dim=0), delta, atol=1e-6, rtol=0)  # the bands sum to a delta
    x = _random_images(c=3)
    torch.testing.assert_close(_pipe(imgfilter=1, imgfilter_std=0)(x), x, atol=2e-6, rtol=0)
    assert float((_pipe(imgfilter=1)(x, debug_percentile=0.9) - x).abs().max()) > 0.05


def test_noise_has_requested_std():
    x = torch.zeros(2, 3, 64, 64)
    y = _pipe(noise=1)(x, debug_percentile=0.5)
    sigma = 0.1 * _erfinv(0.5)
    assert abs(float(y.std()) / sigma - 1) < 0.03 and abs(float(y.mean())) < 0.05 * sigma
    y = _pipe(noise=1, noise_std=0.5)(torch.zeros(4000, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    per_image = y.flatten(1).std(dim=1)  # sigma ~ |N(0, 1)| * noise_std: E[sigma] = noise_std * sqrt(2 / pi)
    assert abs(float(per_image.mean()) / (0.5 * math.sqrt(2 / math.pi)) - 1) < 0.05


def test_cutout_zeroes_square_of_requested_size():
    x = _random_images(c=3) + 3  # no zeros in the input
    y = _pipe(cutout=1)(x, debug_percentile=0.5)  # centre 0.5, side 0.5 * 32 = 16 pixels
    zero = torch.zeros_like(x, dtype=torch.bool)
    zero[..., 8:24, 8:24] = True
    assert bool((y[zero] == 0).all()) and torch.equal(y[~zero], x[~zero])
    y = _pipe(cutout=1, cutout_size=0.25)(x, generator=torch.Generator().manual_seed(0))
    for image in y:
        rows, cols = (image[0] == 0).nonzero(as_tuple=True)
        assert 0 < rows.numel() <= 64 and bool((image == 0).all(dim=0).eq(image[0] == 0).all())
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(box) == rows.numel() and int(rows.max() - rows.min()) < 8 and int(cols.max() - cols.min()) < 8


# ---------------------------------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize("preset,size", [("bgc", 12), ("bgcfnc", 24)])
def test_gradcheck_float64(preset, size):
    pipe = make_augment_pipe(preset).double()
    pipe.set_p(0.9)
    x = _random_images(n=2, c=3, size=size).double().requires_grad_(True)

    def augment(images):
        return pipe(images, generator=torch.Generator().manual_seed(7))  # the same randomness on every call

    assert torch.autograd.gradcheck(augment, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(augment, (x,), fast_mode=True)


def _native_grid_sample_has_double_backward() -> bool:
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    grid = torch.zeros(1, 1, 1, 2)
    (g,) = torch.autograd.grad(F.grid_sample(x, grid, align_corners=False).sum(), x, create_graph=True)
    try:
        torch.autograd.grad(g.sum(), x, allow_unused=True)
    except RuntimeError:
        return False
    return True


def test_grid_sample_double_backward_matches_native():
    # R1 through the pipe: the gradient of ||d logits / d x||^2 w.r.t. D's weights; our grid_sample's
    # double backward must agree with PyTorch's own where PyTorch has one (2.14 does; 2.11 does not).
    from medgan_core.augment import _grid_sample

    if not _native_grid_sample_has_double_backward():
        pytest.skip("this PyTorch has no native double backward for grid_sample to compare with")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64, generator=g, requires_grad=True)
    theta = torch.tensor([[[0.9, 0.2, 0.1], [-0.2, 0.8, 0.05]]] * 2, dtype=torch.float64)
    grid = F.affine_grid(theta, [2, 3, 6, 8], align_corners=False)
    weight = torch.randn(2, 3, 6, 8, dtype=torch.float64, generator=g, requires_grad=True)

    def r1_weight_grad(sample):
        (grad_x,) = torch.autograd.grad((sample(x, grid) * weight).tanh().sum(), x, create_graph=True)
        return torch.autograd.grad(grad_x.square().sum(), weight)[0]

    native = r1_weight_grad(lambda a, b: F.grid_sample(a, b, mode="bilinear", align_corners=False))
    torch.testing.assert_close(r1_weight_grad(_grid_sample), native, atol=1e-12, rtol=1e-12)


def test_gradients_flow_to_input_of_each_preset():
    for preset in PRESETS:
        for channels in (1, 3):
            pipe = make_augment_pipe(preset)
            pipe.set_p(1)
            x = _random_images(n=2, c=channels).requires_grad_(True)
            pipe(x).square().sum().backward()
            assert x.grad is not None and torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0, preset


# ---------------------------------------------------------------------------------------------------------------
# NVIDIA's pickled augment pipe


def _nvidia_augment_pipe_state(path) -> dict[str, torch.Tensor]:
    """Buffers of `augment_pipe` in an official network pickle, read without unpickling any object: the tensors
    are stored as torch.save blobs, which torch.load(weights_only=True) reads safely."""
    ops = list(pickletools.genops(path.read_bytes()))
    start = next(i for i, (op, arg, _) in enumerate(ops) if arg == "augment_pipe")
    state = {}
    for i in range(start, len(ops)):
        if ops[i][1] in ("p", "Hz_geom", "Hz_fbank") and ops[i][1] not in state:
            blob = next(arg for op, arg, _ in ops[i + 1 : i + 8] if op.name in ("BINBYTES", "SHORT_BINBYTES"))
            with warnings.catch_warnings():  # the blobs hold legacy typed storages
                warnings.simplefilter("ignore", UserWarning)
                storage = torch.load(io.BytesIO(blob), weights_only=True)
                state[ops[i][1]] = torch.tensor(list(storage), dtype=torch.float32)
        if len(state) == 3:
            return state
    raise AssertionError(f"augment_pipe buffers not found in {path}")


def test_state_dict_matches_nvidia_pickle(parity_dir):
    nvidia = _nvidia_augment_pipe_state(parity_dir / "network-snapshot.pkl")
    pipe = make_augment_pipe("bgc")
    assert set(pipe.state_dict()) == {"p", "Hz_geom", "Hz_fbank"}
    assert pipe.p.shape == () and pipe.p.dtype == torch.float32
    torch.testing.assert_close(pipe.Hz_geom, nvidia["Hz_geom"], atol=1e-7, rtol=0)
    torch.testing.assert_close(pipe.Hz_fbank.flatten(), nvidia["Hz_fbank"], atol=1e-7, rtol=0)
    state = {"p": nvidia["p"].reshape([]), "Hz_geom": nvidia["Hz_geom"], "Hz_fbank": nvidia["Hz_fbank"].reshape(4, -1)}
    pipe.load_state_dict(state, strict=True)
    assert float(pipe.p) == 0.3125


def test_checkpoint_reader_rebuilds_nvidia_augment_pipe(parity_dir):
    # The pickle's AugmentPipe was built by NVIDIA's train.py with --augpipe bgc: its recorded constructor kwargs
    # are NVIDIA's bgc preset, and its buffers load strictly into ours.
    from medgan_core.checkpoint.nvidia_pickle import read_nvidia_snapshot

    record = read_nvidia_snapshot(parity_dir / "network-snapshot.pkl").records["augment_pipe"]
    assert record.init_kwargs == augpipe_specs["bgc"]
    pipe = AugmentPipe(*record.init_args, **record.init_kwargs)
    pipe.load_state_dict(record.state_dict(), strict=True)
    assert float(pipe.p) == 0.3125
    torch.testing.assert_close(pipe.state_dict()["Hz_fbank"], AugmentPipe().Hz_fbank, atol=1e-7, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# AdaController


def _run_ada(logit_batches, p0=0.5, **kwargs):
    pipe = AugmentPipe()
    pipe.set_p(p0)
    ada = AdaController(pipe, **kwargs)
    history = []
    for logits in logit_batches:
        ada.accumulate(logits)
        new_p = ada.step()
        if new_p is not None:
            history.append(new_p)
    return ada, history


def test_ada_p_rises_when_d_overfits_with_closed_form_step():
    # A scripted D whose real logits are all positive: r_t = 1 > 0.6 every update.
    batches = [torch.rand(8, 1) + 0.1 for _ in range(40)]
    ada, history = _run_ada(batches, p0=0.0, target=0.6, interval=4, kimg=500, batch_size=8)
    step = 8 * 4 / (500 * 1000)
    assert ada.adjust_size == step and ada.last_sign == 1.0 and len(history) == 10
    np.testing.assert_allclose(history, step * np.arange(1, 11), rtol=1e-5, atol=0)
    _, history = _run_ada(batches[:8], p0=0.0, target=0.6, interval=4, kimg=100, batch_size=32)
    np.testing.assert_allclose(history, [32 * 4 / 100_000, 2 * 32 * 4 / 100_000], rtol=1e-5)


def test_ada_p_falls_and_stays_non_negative():
    # Real logits that are positive for half the images: r_t = 0 < 0.6, so p falls to 0 and stays there.
    batches = [torch.tensor([1.0, -1.0, 2.0, -3.0]) for _ in range(60)]
    ada, history = _run_ada(batches, p0=0.001, interval=4, kimg=1, batch_size=4)  # step 0.016
    assert history[0] == 0.0 and all(p == 0.0 for p in history) and ada.last_sign == 0.0
    ada, history = _run_ada(batches, p0=0.5, interval=4, kimg=500, batch_size=4)
    assert all(b < a for a, b in zip([0.5] + history, history))


def test_ada_updates_only_every_interval_and_resumes():
    pipe = AugmentPipe()
    pipe.set_p(0.2)
    ada = AdaController(pipe, interval=4, batch_size=16)
    for _ in range(3):
        ada.accumulate(torch.ones(16))
        assert ada.step() is None
    state = ada.state_dict()
    json.dumps(state)  # plain data, fits in a JSON training record
    resumed = AdaController(pipe, interval=4, batch_size=16, kimg=100)
    resumed.load_state_dict(state)
    resumed.accumulate(-torch.ones(16))
    assert resumed.step() == pytest.approx(0.2 - 16 * 4 / 100_000, rel=1e-6)  # r_t = (48 - 16) / 64 = 0.5 < 0.6
    assert resumed.last_sign == 0.5
    assert resumed.update() == resumed.p  # nothing accumulated: p unchanged
    with pytest.raises(ValueError, match="batch size"):
        AdaController(pipe)


def _ada_rank(rank, world_size, init_file, rank_batches, out_dir):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        _, history = _run_ada(rank_batches[rank], p0=0.01, interval=2, kimg=1, batch_size=20)
        (out_dir / f"rank{rank}.json").write_text(json.dumps(history))
    finally:
        torch.distributed.destroy_process_group()


def test_ada_two_rank_reduction_equals_single_process(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # spawned ranks import this module
    g = torch.Generator().manual_seed(0)
    # Rank 0 sees confident positive logits, rank 1 mostly negative ones with a different batch size, so each
    # rank alone would move p the other way from the global statistic.
    rank_batches = [
        [torch.randn(8, generator=g) + 1.5 for _ in range(6)],
        [torch.randn(12, generator=g) - 0.4 for _ in range(6)],
    ]
    torch.multiprocessing.spawn(_ada_rank, args=(2, tmp_path / "init", rank_batches, tmp_path), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    joined = [torch.cat([a, b]) for a, b in zip(*rank_batches)]
    _, single = _run_ada(joined, p0=0.01, interval=2, kimg=1, batch_size=20)
    _, rank0_alone = _run_ada(rank_batches[0], p0=0.01, interval=2, kimg=1, batch_size=20)
    assert ranks[0] == ranks[1] == single
    assert single != rank0_alone


# ---------------------------------------------------------------------------------------------------------------
# CUDA (run on a lent GPU)

needs_cuda = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("channels", [1, 3])
@needs_cuda[0]
@needs_cuda[1]
def test_cuda_matches_cpu_with_one_generator(channels):
    pipe = make_augment_pipe("bgcfnc")
    pipe.set_p(0.7)
    x = _random_images(n=6, c=channels, size=64)
    y_cpu = pipe(x, generator=torch.Generator().manual_seed(3))
    y_cuda = pipe.cuda()(x.cuda(), generator=torch.Generator().manual_seed(3))  # CPU generator, CUDA images
    torch.testing.assert_close(y_cuda.cpu(), y_cpu, atol=1e-4, rtol=0)


@needs_cuda[0]
@needs_cuda[1]
def test_cuda_r1_double_backward_and_ada():
    pipe = make_augment_pipe("bgcf").cuda()
    pipe.set_p(0.5)
    weight = torch.randn(3, 32, 32, device="cuda", requires_grad=True)  # a linear "discriminator"
    x = _random_images(n=4, c=3).cuda().requires_grad_(True)
    logits = (pipe(x) * weight).flatten(1).mean(dim=1).tanh()
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all() and float(weight.grad.abs().sum()) > 0
    ada = AdaController(pipe, interval=1, kimg=1, batch_size=4)
    ada.accumulate(torch.ones(4, 1, device="cuda"))
    assert ada.step() == pytest.approx(0.5 + 4 / 1000, rel=1e-6) and pipe.p.is_cuda

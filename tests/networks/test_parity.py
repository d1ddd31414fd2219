"""Parity with NVIDIA's official StyleGAN2 networks: official weights in, official outputs out.

Tolerances from ../shared/reference/README.md: images and ws within 1e-4 of the reference relative to its largest
value, logits within 1e-4, the input gradient within 1e-3 relative.
"""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medgan_core.networks import Discriminator, Generator
from medgan_core.ops import dispatch


@pytest.fixture(scope="module")
def parity(parity_dir):
    config = json.loads((parity_dir / "config.json").read_text())
    G = Generator(**config["G_init_kwargs"]).eval()
    D = Discriminator(**config["D_init_kwargs"]).eval()
    G.load_state_dict(load_file(parity_dir / "G.safetensors"), strict=True)
    D.load_state_dict(load_file(parity_dir / "D.safetensors"), strict=True)
    with np.load(parity_dir / "reference.npz") as npz:
        ref = {k: torch.from_numpy(npz[k]) for k in npz.files}
    return G, D, ref


def _assert_rel(got: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    assert got.shape == expected.shape and got.dtype == torch.float32
    err = (got.detach() - expected).abs().max().item() / expected.abs().max().item()
    assert err <= tol, f"relative error {err:.3g} > {tol}"


def test_constructors_take_official_kwargs(parity_dir, parity):
    G, D, _ = parity
    config = json.loads((parity_dir / "config.json").read_text())
    for key, value in config["G_init_kwargs"].items():
        assert G.init_kwargs[key] == value
    for key, value in config["D_init_kwargs"].items():
        assert D.init_kwargs[key] == value
    rebuilt = Generator(**G.init_kwargs)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in G.state_dict().items()}


@pytest.mark.parametrize(
    "key,kwargs",
    [
        ("ws", {}),
        ("ws_trunc07", dict(truncation_psi=0.7)),
        ("ws_trunc05_cut4", dict(truncation_psi=0.5, truncation_cutoff=4)),
    ],
)
def test_mapping_matches_official(parity, key, kwargs):
    G, _, ref = parity
    with torch.no_grad():
        _assert_rel(G.mapping(ref["z"], ref["c"], **kwargs), ref[key], 1e-4)


@pytest.mark.parametrize(
    "key,noise_mode,fused",
    [("img_fused", "const", True), ("img_unfused", "const", False), ("img_nonoise", "none", False)],
)
def test_synthesis_matches_official(parity, key, noise_mode, fused):
    G, _, ref = parity
    with torch.no_grad():
        _assert_rel(G.synthesis(ref["ws"], noise_mode=noise_mode, fused_modconv=fused), ref[key], 1e-4)


def test_generator_with_truncation_matches_official(parity):
    G, _, ref = parity
    with torch.no_grad():
        _assert_rel(G(ref["z"], ref["c"], truncation_psi=0.7, noise_mode="const"), ref["img_trunc07"], 1e-4)


def test_reference_cases_are_distinct(parity):
    """Guards the parity tests above against comparing a case with itself."""
    _, _, ref = parity
    assert (ref["img_fused"] - ref["img_nonoise"]).abs().max() > 1e-3
    assert (ref["ws"] - ref["ws_trunc07"]).abs().max() > 1e-3
    assert (ref["ws_trunc05_cut4"][:, 4:] - ref["ws"][:, 4:]).abs().max() == 0


def test_discriminator_matches_official(parity):
    _, D, ref = parity
    with torch.no_grad():
        logits = D(ref["d_input"], ref["c"])
        assert (logits - ref["d_logits"]).abs().max().item() <= 1e-4
        logits_fake = D(ref["img_fused"], ref["c"])
        assert (logits_fake - ref["d_logits_of_img_fused"]).abs().max().item() <= 1e-4


def test_discriminator_input_gradient_matches_official(parity):
    """The gradient R1 penalises: d(sum of logits) / d(image)."""
    _, D, ref = parity
    img = ref["d_input"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(img, ref["c"]).sum(), img)
    _assert_rel(grad, ref["d_grad_input"], 1e-3)


def _layout(reference_dir):
    rows = list(csv.DictReader((reference_dir / "stylegan2_state_dict_layout.tsv").open(), delimiter="\t"))
    configs = sorted({(int(r["resolution"]), int(r["channel_base"])) for r in rows})
    return rows, configs


@pytest.mark.parametrize("index", [0, 1, 2])
def test_state_dict_layout_matches_official(reference_dir, index):
    """NVIDIA's FFHQ 256/512/1024 layouts: every name and shape, in order (built on the meta device)."""
    rows, configs = _layout(reference_dir)
    assert len(configs) == 3
    resolution, channel_base = configs[index]
    common = dict(img_resolution=resolution, img_channels=3, channel_base=channel_base, channel_max=512)
    with torch.device("meta"):
        G = Generator(z_dim=512, c_dim=0, w_dim=512, mapping_kwargs=dict(num_layers=8), **common)
        D = Discriminator(c_dim=0, **common)
    for net_name, net in (("G", G), ("D", D)):
        expected = [
            (r["name"], r["shape"]) for r in rows if int(r["resolution"]) == resolution and r["net"] == net_name
        ]
        got = [(k, "x".join(str(s) for s in v.shape) or "scalar") for k, v in net.state_dict().items()]
        assert got == expected, f"{net_name} at {resolution}"


@pytest.fixture
def no_tf32():
    """TF32 matmuls/convolutions would cost ~1e-3 relative accuracy: NVIDIA's parity runs in full float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("impl", ["ref", "auto"])
def test_parity_on_cuda(parity, no_tf32, impl):
    """The same official figures on CUDA, with the reference ops and with 'auto' (fused kernels if registered)."""
    G, D, ref = parity
    G, D = copy.deepcopy(G).cuda(), copy.deepcopy(D).cuda()
    cuda = {k: v.cuda() for k, v in ref.items()}
    with dispatch.prefer(impl), torch.no_grad():
        for key, fused in (("img_fused", True), ("img_unfused", False)):
            _assert_rel(G.synthesis(cuda["ws"], noise_mode="const", fused_modconv=fused).cpu(), ref[key], 1e-4)
        img_trunc = G(cuda["z"], cuda["c"], truncation_psi=0.7, noise_mode="const")
        _assert_rel(img_trunc.cpu(), ref["img_trunc07"], 1e-4)
        assert (D(cuda["d_input"], cuda["c"]).cpu() - ref["d_logits"]).abs().max().item() <= 1e-4
    with dispatch.prefer(impl):
        img = cuda["d_input"].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(img, cuda["c"]).sum(), img)
    _assert_rel(grad.cpu(), ref["d_grad_input"], 1e-3)

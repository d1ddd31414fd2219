"""Weight transfer across resolution and channel count: report contents and exact behaviour of the RGB rule."""

from __future__ import annotations

import csv
import re

import pytest
import torch

from medgan_core.checkpoint import transfer_weights
from medgan_core.checkpoint.transfer import LUMA_BT601, plan_transfer
from medgan_core.networks import Discriminator, Generator


def _z(n=3, seed=0):
    return torch.randn(n, 8, generator=torch.Generator().manual_seed(seed)), torch.zeros(n, 0)


@pytest.mark.parametrize("rule", ["mean", "luma"])
@pytest.mark.parametrize("architecture", ["skip", "resnet"])
def test_gray_generator_draws_the_rgb_combination(make_generator, rule, architecture):
    source = make_generator(1, architecture=architecture).eval()
    target = make_generator(2, img_channels=1, architecture=architecture).eval()
    report = transfer_weights(source, target, rgb_rule=rule)
    assert {name for name, *_ in report.adapted} == {
        n for n in target.state_dict() if ".torgb.weight" in n or ".torgb.bias" in n
    }
    assert not report.left_at_init
    z, c = _z()
    with torch.no_grad():
        rgb = source(z, c, noise_mode="const")
        gray = target(z, c, noise_mode="const")
    weights = torch.full((3,), 1 / 3) if rule == "mean" else torch.tensor(LUMA_BT601)
    expected = (rgb * weights.reshape(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    torch.testing.assert_close(gray, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["resnet", "skip", "orig"])
def test_gray_discriminator_matches_rgb_on_replicated_gray(make_discriminator, architecture):
    source = make_discriminator(1, architecture=architecture).eval()
    target = make_discriminator(2, img_channels=1, architecture=architecture).eval()
    report = transfer_weights(source, target)
    assert {name for name, *_ in report.adapted} == {
        n for n in target.state_dict() if "fromrgb" in n and n.endswith("weight")
    }
    gray = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    c = torch.zeros(4, 0)
    with torch.no_grad():
        torch.testing.assert_close(target(gray, c), source(gray.repeat(1, 3, 1, 1), c), rtol=1e-5, atol=1e-6)


def test_rgb_discriminator_from_gray_sees_channel_mean(make_discriminator):
    source = make_discriminator(1, img_channels=1).eval()
    target = make_discriminator(2).eval()
    transfer_weights(source, target)
    rgb = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(
            target(rgb, torch.zeros(4, 0)), source(rgb.mean(1, keepdim=True), torch.zeros(4, 0)), rtol=1e-5, atol=1e-6
        )


def test_resolution_change_copies_shared_blocks(make_generator, make_discriminator):
    source = make_generator(1, img_resolution=16, channel_base=128)
    lower = make_generator(2, img_resolution=8, img_channels=1, channel_base=128)
    higher = make_generator(3, img_resolution=32, img_channels=1, channel_base=128)
    higher_before = {k: v.clone() for k, v in higher.state_dict().items()}
    src_state = source.state_dict()
    for target in (lower, higher):
        report = transfer_weights(source, target)
        state = target.state_dict()
        for name in report.copied:
            assert torch.equal(state[name], src_state[name])
        names_left = {name for name, _ in report.left_at_init}
        assert report.copied and all(src_state.get(n) is not None for n in report.copied)
        assert set(report.copied) | {n for n, *_ in report.adapted} | names_left == set(state)
    assert not any(name for name, _ in transfer_weights(source, lower).left_at_init)
    left = {name for name, _ in transfer_weights(source, higher).left_at_init}
    assert left == {name for name in higher.state_dict() if name.startswith("synthesis.b32.")}
    for name in left:  # blocks above the source's resolution keep their initial values
        if "w_avg" not in name:
            assert torch.equal(higher.state_dict()[name], higher_before[name])
    text = str(transfer_weights(source, higher))
    assert "copied" in text and "synthesis.b32.conv0.weight" in text and "absent in source" in text


def _layout(reference_dir, resolution, net):
    shapes: dict[int, dict] = {}
    with open(reference_dir / "stylegan2_state_dict_layout.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if int(row["resolution"]) == resolution and row["net"] == net:
                shape = () if row["shape"] == "scalar" else tuple(int(s) for s in row["shape"].split("x"))
                shapes[row["name"]] = shape
    return shapes


@pytest.mark.parametrize("source_res", [1024, 512, 256])
@pytest.mark.parametrize("target_res", [512, 256])
def test_ffhq_layouts_into_grayscale(reference_dir, source_res, target_res):
    """FFHQ RGB layouts (NVIDIA's names and shapes, from the reference TSV) into grayscale targets on meta."""
    channel_base = 16384 if source_res == 256 else 32768  # the target keeps the source's channel widths
    with torch.device("meta"):
        G = Generator(
            z_dim=512,
            c_dim=0,
            w_dim=512,
            img_resolution=target_res,
            img_channels=1,
            channel_base=channel_base,
            channel_max=512,
        )
        D = Discriminator(
            c_dim=0, img_resolution=target_res, img_channels=1, channel_base=channel_base, channel_max=512
        )
    for net, target in (("G", G), ("D", D)):
        source = _layout(reference_dir, source_res, net)
        target_shapes = {k: tuple(v.shape) for k, v in target.state_dict().items()}
        report = plan_transfer(source, target_shapes)
        adapted = {name for name, *_ in report.adapted}
        left = {name for name, _ in report.left_at_init}
        for name, shape in target_shapes.items():
            block = re.match(r"(?:synthesis\.)?b(\d+)\.", name)
            if block and int(block.group(1)) > source_res:
                assert name in left, name  # above the source: stays at init
            elif "torgb.weight" in name or "torgb.bias" in name:
                assert name in adapted, name
            elif "fromrgb" in name:
                if source_res != target_res:
                    assert name in left, name  # the source's block at this resolution has no fromrgb
                else:
                    assert name in (adapted if name.endswith("weight") else report.copied), name
            else:
                assert name in report.copied and source[name] == shape, name

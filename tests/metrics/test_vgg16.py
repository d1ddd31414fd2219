"""VGG16 features for precision/recall: torchvision's network with the same weights, the TF1 resize in closed
form, grey = RGB, and the weight file loading (state dict or NVIDIA's TorchScript)."""

import pytest
import torch

from medgan_core.metrics.detector import VGG16Detector, load_vgg16, load_vgg16_file
from medgan_core.metrics.vgg16 import VGG16, random_vgg16_state_dict, resize_bilinear_tf1


@pytest.fixture(scope="module")
def vgg_state():
    return random_vgg16_state_dict(seed=0)


@pytest.fixture(scope="module")
def ours(vgg_state):
    network = VGG16()
    network.load_state_dict(vgg_state, strict=True)
    return network


def test_fc2_relu_matches_torchvision_vgg16_with_the_same_weights(ours, vgg_state):
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.vgg16(weights=None)
    reference.load_state_dict(vgg_state, strict=True)
    reference.eval()
    images = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = torchvision.transforms.functional.normalize(
            images.float(), [255 * m for m in (0.485, 0.456, 0.406)], [255 * s for s in (0.229, 0.224, 0.225)]
        )  # 224 x 224 input: the resize is the identity
        x = reference.avgpool(reference.features(x)).flatten(1)
        expected = reference.classifier[:5](x)  # fc1, ReLU, dropout (identity), fc2, ReLU
        features = ours(images)
    assert features.shape == (1, 4096) and (features >= 0).all()
    assert (features - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_tf1_resize_closed_forms():
    x = torch.arange(2 * 448 * 448, dtype=torch.float32).reshape(1, 2, 448, 448)
    assert torch.equal(resize_bilinear_tf1(x, 224), x[:, :, ::2, ::2])  # output i samples input 2 i exactly
    small = torch.rand(1, 1, 112, 112, generator=torch.Generator().manual_seed(1))
    up = resize_bilinear_tf1(small, 224)
    assert torch.equal(up[:, :, ::2, ::2], small)  # even outputs sit on input pixels
    between = (small[:, :, :, :-1] + small[:, :, :, 1:]) / 2
    assert torch.allclose(up[:, :, ::2, 1:-1:2], between, atol=1e-6)  # odd ones halfway
    assert torch.equal(up[:, :, ::2, -1], small[:, :, :, -1])  # the last one clamps to the edge


def test_grey_images_are_rgb_repeated(ours):
    grey = torch.randint(0, 256, (1, 1, 64, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(ours(grey), ours(grey.repeat(1, 3, 1, 1)))


def test_weight_files_load_as_state_dict_or_torchscript(tmp_path, vgg_state, ours, monkeypatch):
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(vgg_state, path)
    detector = load_vgg16_file(path)
    assert detector.kind == "torchvision" and detector.tag.startswith("vgg16-torchvision-")
    images = torch.randint(0, 256, (1, 1, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(detector(images), ours(images))

    class NvidiaStyle(torch.nn.Module):  # NVIDIA's TorchScript signature: forward(img, return_features=...)
        def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return img.float().mean(dim=(2, 3)) if return_features else img.float()

    script = tmp_path / "vgg16.pt"
    torch.jit.save(torch.jit.script(NvidiaStyle()), str(script))
    nvidia = load_vgg16_file(script)
    assert nvidia.kind == "nvidia" and nvidia(images).shape == (1, 3)  # grey repeated, return_features passed
    monkeypatch.setenv("MEDGAN_VGG16", str(path))
    assert isinstance(load_vgg16(), VGG16Detector) and load_vgg16().tag == detector.tag
    with pytest.raises(ValueError, match="not torchvision's VGG16 state dict"):
        torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "bad.pth")
        load_vgg16_file(tmp_path / "bad.pth")

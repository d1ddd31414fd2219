"""Our FID Inception-v3 against pytorch-fid's InceptionV3 holding the same (random) weights."""

import numpy as np
import pytest
import torch

from medgan_core.metrics.detector import build_pytorch_fid_detector
from medgan_core.metrics.inception import FIDInceptionV3


def test_parameter_names_and_shapes_match_pytorch_fid_weight_layout(random_state_dict):
    from unittest import mock

    import pytorch_fid.inception as pfi

    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *args, **kwargs: random_state_dict):
        theirs = pfi.fid_inception_v3().state_dict()  # the module the official .pth file is loaded into
    ours = FIDInceptionV3().state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[name].shape == theirs[name].shape for name in ours)


@pytest.fixture(scope="module")
def mni_batch(mni_volume):
    slices = np.stack([mni_volume[:, :, z] for z in range(60, 64)])
    return torch.from_numpy(slices[:, None])  # uint8 [6, 1, 197, 233]


@pytest.fixture(scope="module")
def reference_features(pytorch_fid_model, mni_batch):
    """pytorch-fid's own path: PIL convert('RGB') replicates gray; ToTensor divides by 255."""
    with torch.no_grad():
        x = mni_batch.repeat(1, 3, 1, 1).float().div(255)
        return pytorch_fid_model(x)[0].squeeze(3).squeeze(2).numpy()


def test_unfolded_features_equal_pytorch_fid(random_state_dict, mni_batch, reference_features):
    network = FIDInceptionV3()
    network.load_state_dict(random_state_dict)
    with torch.inference_mode():
        ours = network(mni_batch).numpy()
    scale = np.abs(reference_features).max()
    assert scale > 0.1 and reference_features.std(axis=0).mean() > 1e-3  # features are not degenerate
    np.testing.assert_allclose(ours, reference_features, rtol=0, atol=1e-5 * scale)


def test_optimised_detector_features_equal_pytorch_fid(random_state_dict, mni_batch, reference_features):
    detector = build_pytorch_fid_detector(random_state_dict, "0" * 64)
    ours = detector(mni_batch).numpy()
    np.testing.assert_allclose(ours, reference_features, rtol=0, atol=1e-5 * np.abs(reference_features).max())


def test_gray_input_is_repeated_to_three_channels(mni_batch):
    network = FIDInceptionV3()
    gray, rgb = network.preprocess(mni_batch), network.preprocess(mni_batch.repeat(1, 3, 1, 1))
    assert gray.shape == (len(mni_batch), 3, 299, 299) and torch.equal(gray, rgb)
    assert gray.min() >= -1 and gray.max() <= 1


def test_rejects_non_uint8_input(random_state_dict):
    with pytest.raises(TypeError, match="uint8"):
        FIDInceptionV3()(torch.zeros(1, 3, 64, 64))

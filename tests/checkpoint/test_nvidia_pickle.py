"""NVIDIA network pickles: official snapshot parity, numpy-1/2 and ada/stylegan3 layouts, refusal of code."""

from __future__ import annotations

import collections
import json
import os
import pickle
import subprocess
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medgan_core.checkpoint import CheckpointError, UnsafePickleError, load_network
from medgan_core.checkpoint.nvidia_pickle import read_nvidia_snapshot
from medgan_core.networks import Discriminator, Generator


@pytest.fixture(scope="module")
def official(parity_dir):
    config = json.loads((parity_dir / "config.json").read_text())
    G = Generator(**config["G_init_kwargs"])
    G.load_state_dict(load_file(parity_dir / "G.safetensors"), strict=True)
    D = Discriminator(**config["D_init_kwargs"])
    D.load_state_dict(load_file(parity_dir / "D.safetensors"), strict=True)
    reference = dict(np.load(parity_dir / "reference.npz"))
    return G.eval(), D.eval(), reference, load_network(parity_dir / "network-snapshot.pkl")


def test_snapshot_networks_match_safetensors_and_reference(official):
    G, D, ref, loaded = official
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    assert loaded["source"] == "nvidia-pickle" and loaded["record"] is None
    for name in ("G", "G_ema"):
        net = loaded[name]
        assert not net.training and not any(p.requires_grad for p in net.parameters())
        for kwargs in (dict(truncation_psi=0.7, noise_mode="const"), dict(noise_mode="none")):
            assert torch.equal(net(z, c, **kwargs), G(z, c, **kwargs))
    img = loaded["G_ema"](z, c, truncation_psi=0.7, noise_mode="const")
    scale = np.abs(ref["img_trunc07"]).max()
    assert np.abs(img.numpy() - ref["img_trunc07"]).max() <= 1e-4 * scale  # NVIDIA's output, README tolerance
    d_input = torch.from_numpy(ref["d_input"])
    logits = loaded["D"](d_input, c)
    assert torch.equal(logits, D(d_input, c))
    assert np.abs(logits.numpy() - ref["d_logits"]).max() <= 1e-4


def test_snapshot_augment_pipe_and_training_set(official):
    loaded = official[3]
    assert loaded["augment_p"] == 0.3125  # the README's figure for this pickle
    assert loaded["augment_pipe"] is not None and float(loaded["augment_pipe"].p) == 0.3125
    assert loaded["training_set_kwargs"]["path"] == "liver.zip"
    assert loaded["training_set_kwargs"]["resolution"] == 32


def _snapshot(G, D):
    return {
        "G": G,
        "D": D,
        "G_ema": G,
        "augment_pipe": None,
        "training_set_kwargs": {"path": "x.zip", "use_labels": False, "resolution": 8},
    }


@pytest.mark.parametrize("numpy_era,protocol", [(1, 2), (2, 4)])
def test_numpy1_and_numpy2_era_pickles(
    tmp_path, nvidia_pickle_writer, make_generator, make_discriminator, numpy_era, protocol
):
    G, D = make_generator(1), make_discriminator(2)
    path = nvidia_pickle_writer(tmp_path / "net.pkl", _snapshot(G, D), numpy_era=numpy_era, protocol=protocol)
    module = b"numpy.core.multiarray" if numpy_era == 1 else b"numpy._core.multiarray"
    assert module in path.read_bytes()
    other = b"numpy._core.multiarray" if numpy_era == 1 else b"numpy.core.multiarray\n"
    assert other not in path.read_bytes()
    record = read_nvidia_snapshot(path).records["G"].submodules()["synthesis"]
    gain = record.submodules()["b4"].submodules()["torgb"].state["weight_gain"]
    assert isinstance(gain, np.float64) and gain == G.synthesis.b4.torgb.weight_gain
    loaded = load_network(path)
    z = torch.randn(3, 8)
    c = torch.zeros(3, 0)
    assert torch.equal(loaded["G_ema"](z, c, noise_mode="const"), G.eval()(z, c, noise_mode="const"))
    img = torch.randn(4, 3, 8, 8)
    assert torch.equal(loaded["D"](img, c), D.eval()(img, c))
    assert loaded["augment_pipe"] is None and loaded["augment_p"] is None


def test_stylegan2_ada_layout_kwargs(
    tmp_path, nvidia_pickle_writer, make_generator, make_discriminator, make_meta, easy_dict
):
    """ada-pytorch: Generator(..., synthesis_kwargs={...}); num_fp16_res/conv_clamp left to ada's defaults (0/None,
    where stylegan3 defaults to 4/256): the values come back from what the layers recorded."""
    G, D = make_generator(3), make_discriminator(4)
    g_kwargs = {key: G.init_kwargs[key] for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    g_kwargs["mapping_kwargs"] = easy_dict(G.init_kwargs["mapping_kwargs"])
    g_kwargs["synthesis_kwargs"] = easy_dict({"channel_base": 64, "channel_max": 16})
    d_kwargs = {key: value for key, value in D.init_kwargs.items() if key not in ("num_fp16_res", "conv_clamp")}
    overrides = {id(G): make_meta(G, init_kwargs=g_kwargs), id(D): make_meta(D, init_kwargs=d_kwargs)}
    path = nvidia_pickle_writer(tmp_path / "ada.pkl", _snapshot(G, D), overrides=overrides)
    assert b"dnnlib.util" in path.read_bytes()
    loaded = load_network(path)
    assert loaded["G"].synthesis.b8.conv1.conv_clamp is None
    assert loaded["D"].b8.conv0.conv_clamp is None
    z, c = torch.randn(2, 8), torch.zeros(2, 0)
    assert torch.equal(loaded["G"](z, c, noise_mode="const"), G.eval()(z, c, noise_mode="const"))


def test_refuses_unknown_persistent_class_without_running_it(
    tmp_path, nvidia_pickle_writer, make_generator, make_meta
):
    marker = tmp_path / "marker"
    G = make_generator()
    src = f"open({str(marker)!r}, 'w').write('ran')\nclass EvilNet: pass\n"
    overrides = {id(G): make_meta(G, class_name="EvilNet", module_src=src)}
    path = nvidia_pickle_writer(tmp_path / "evil.pkl", {"G": G}, overrides=overrides)
    with pytest.raises(UnsafePickleError, match="EvilNet") as info:
        load_network(path)
    assert str(path) in str(info.value) and "Nothing from the file was executed" in str(info.value)
    assert not marker.exists()


class _Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    return {
        "posix.system": _Payload(os.system, f"touch {marker}"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
        "builtins.eval": _Payload(eval, f"open({str(marker)!r}, 'w')"),
        "builtins.exec": _Payload(exec, f"open({str(marker)!r}, 'w')"),
    }


@pytest.mark.parametrize("name", ["posix.system", "subprocess.call", "builtins.eval", "builtins.exec"])
def test_refuses_code_execution(tmp_path, name, make_generator, nvidia_pickle_writer):
    marker = tmp_path / "marker"
    payload = _payloads(marker)[name]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G": None, "D": payload}, protocol=4))
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
        load_network(path)
    assert not marker.exists()
    if name == "posix.system":  # the same bytes through plain pickle do run the payload: the test can fail
        pickle.loads(path.read_bytes())
        assert marker.exists()


def test_refusal_happens_before_earlier_objects_matter(tmp_path, nvidia_pickle_writer, make_generator):
    """A payload after a valid network in the same snapshot is still refused and never runs."""
    marker = tmp_path / "marker"
    snapshot = {"G": make_generator(), "training_set_kwargs": _payloads(marker)["posix.system"]}
    path = nvidia_pickle_writer(tmp_path / "mixed.pkl", snapshot)
    with pytest.raises(UnsafePickleError):
        load_network(path)
    assert not marker.exists()


def test_bad_files_give_clear_errors(tmp_path):
    missing = tmp_path / "nope.pkl"
    with pytest.raises(CheckpointError, match="no such file"):
        load_network(missing)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(b"\x80\x04\x95" + b"\x00" * 5)
    with pytest.raises(CheckpointError, match="truncated.pkl"):
        load_network(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="neither a network pickle"):
        load_network(text)
    not_networks = tmp_path / "list.pkl"
    not_networks.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_network(not_networks)


def test_refuses_tensor_view_outside_its_storage(tmp_path):
    """torch itself does not bounds-check rebuilt views; reading past a storage would expose process memory."""

    class OutOfBounds:
        def __reduce__(self):
            storage = torch.zeros(4).storage()
            return torch._utils._rebuild_tensor_v2, (storage, 2, (100,), (1,), False, collections.OrderedDict())

    path = tmp_path / "oob.pkl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        path.write_bytes(pickle.dumps({"G": OutOfBounds()}, protocol=4))
    with pytest.raises(UnsafePickleError, match="reaches element 101"):
        load_network(path)


def test_stylegan3_generator_named_in_the_error(tmp_path, nvidia_pickle_writer, make_generator, make_meta):
    G = make_generator()
    overrides = {id(G.synthesis.b4): make_meta(G.synthesis.b4, class_name="SynthesisInput")}
    path = nvidia_pickle_writer(tmp_path / "sg3.pkl", {"G_ema": G}, overrides=overrides)
    with pytest.raises(UnsafePickleError, match="StyleGAN3"):
        load_network(path)

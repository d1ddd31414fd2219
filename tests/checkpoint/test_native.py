"""medgan's safetensors checkpoint: exact round trip, optimiser state, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from medgan_core.augment import AugmentPipe
from medgan_core.checkpoint import (
    CheckpointError,
    flatten_optimizer_state,
    load_checkpoint,
    load_network,
    restore_optimizer_state,
    save_checkpoint,
)


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    for name in state_a:
        assert state_a[name].dtype == state_b[name].dtype and torch.equal(state_a[name], state_b[name]), name


def test_round_trip_exact(tmp_path, make_generator, make_discriminator):
    G, D, G_ema = make_generator(1), make_discriminator(2), make_generator(3, img_channels=1)
    pipe = AugmentPipe(xflip=1, rotate90=1, xint=1)
    pipe.p.copy_(torch.tensor(0.25))
    record = {
        "kimg": 12.5,
        "augment_p": 0.25,
        "options": {"gamma": 0.8, "mirror": True, "lrs": [0.0025, 0.002]},
        "training_set_kwargs": {"path": "data.zip", "resolution": 8},
        "note": None,
    }
    extra = {"step": torch.tensor(7, dtype=torch.int64), "moments": torch.randn(3, 4, dtype=torch.float64)}
    path = save_checkpoint(
        tmp_path / "ckpt.safetensors", {"G": G, "D": D, "G_ema": G_ema, "augment_pipe": pipe}, record, extra
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]  # no temporary file left behind
    loaded = load_checkpoint(path)
    assert loaded["record"] == record
    assert set(loaded["extra_tensors"]) == set(extra)
    for key, value in extra.items():
        assert loaded["extra_tensors"][key].dtype == value.dtype and torch.equal(loaded["extra_tensors"][key], value)
    nets = loaded["networks"]
    for name, original in {"G": G, "D": D, "G_ema": G_ema, "augment_pipe": pipe}.items():
        assert type(nets[name]) is type(original)
        _assert_same_state(nets[name], original)
    assert nets["G_ema"].init_kwargs == G_ema.init_kwargs
    z, c = torch.randn(4, 8), torch.zeros(4, 0)
    with torch.no_grad():
        assert torch.equal(nets["G"](z, c, noise_mode="const"), G(z, c, noise_mode="const"))
        img = torch.randn(4, 3, 8, 8)
        assert torch.equal(nets["D"](img, c), D(img, c))

    as_network = load_network(path)
    assert as_network["source"] == "medgan" and as_network["record"] == record
    assert as_network["augment_p"] == 0.25 and as_network["training_set_kwargs"] == record["training_set_kwargs"]
    assert not as_network["G_ema"].training


def test_file_layout_is_plain_safetensors(tmp_path, make_generator):
    G = make_generator()
    path = save_checkpoint(tmp_path / "g.safetensors", {"G_ema": G}, {"kimg": 0})
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        header = json.loads(f.metadata()["medgan"])
    assert keys == {f"G_ema.{name}" for name in G.state_dict()}
    assert header["networks"]["G_ema"]["class"] == "Generator"
    assert header["networks"]["G_ema"]["init_kwargs"] == G.init_kwargs


def test_optimizer_state_round_trip(tmp_path, make_generator):
    def train_steps(G, opt, steps, seed):
        generator = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            z = torch.randn(2, 8, generator=generator)
            loss = G(z, torch.zeros(2, 0), noise_mode="const").square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    G = make_generator(5)
    opt = torch.optim.Adam(G.parameters(), lr=0.01, betas=(0.0, 0.99), eps=1e-8)
    train_steps(G, opt, 2, seed=0)
    tensors, state = flatten_optimizer_state(opt, prefix="opt_G.")
    path = save_checkpoint(tmp_path / "c.safetensors", {"G": G}, {"opt_G": state}, tensors)

    loaded = load_checkpoint(path)
    G2 = loaded["networks"]["G"]
    opt2 = torch.optim.Adam(G2.parameters(), lr=0.5, betas=(0.5, 0.5))
    restore_optimizer_state(opt2, loaded["extra_tensors"], loaded["record"]["opt_G"])
    assert opt2.param_groups[0]["betas"] == (0.0, 0.99) and opt2.param_groups[0]["lr"] == 0.01
    train_steps(G, opt, 1, seed=1)
    train_steps(G2, opt2, 1, seed=1)
    _assert_same_state(G, G2)  # resumed training continues exactly


def test_errors(tmp_path, make_generator):
    G = make_generator()
    with pytest.raises(TypeError, match="record"):
        save_checkpoint(tmp_path / "x.safetensors", {"G": G}, {"bad": object()})
    with pytest.raises(ValueError, match="collide"):
        save_checkpoint(tmp_path / "x.safetensors", {"G": G}, {}, {"G.extra": torch.zeros(1)})
    assert not (tmp_path / "x.safetensors").exists()

    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, bare)
    with pytest.raises(CheckpointError, match="without a medgan record"):
        load_network(bare)

    path = save_checkpoint(tmp_path / "g.safetensors", {"G": G}, {})
    with safe_open(str(path), framework="pt") as f:
        header = json.loads(f.metadata()["medgan"])
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    header["networks"]["G"]["class"] = "os.system"
    forged = tmp_path / "forged.safetensors"
    save_file(tensors, forged, metadata={"medgan": json.dumps(header)})
    with pytest.raises(CheckpointError, match="unknown class 'os.system'"):
        load_checkpoint(forged)

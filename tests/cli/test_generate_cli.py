"""`medgan generate`: byte-identical PNGs for the same seeds, no metadata, gray/RGB modes, clear errors.

(Named test_generate_cli.py: tests/test_generate.py already holds the library's tests, and pytest's default import
mode needs distinct basenames in folders without __init__.py.)
"""

from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from medgan_core.checkpoint import load_network, save_checkpoint
from medgan_core.cli import main
from medgan_core.generate import generate_images
from medgan_core.networks import Generator


def _png_chunk_types(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    types, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        types.append(data[offset + 4 : offset + 8].decode("ascii"))
        offset += 12 + length
    return types


def _run(*args):
    return CliRunner().invoke(main, ["generate", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def gray_checkpoint(tmp_path_factory):
    """A tiny one-channel conditional generator saved in medgan's format."""
    torch.manual_seed(0)
    G = Generator(
        z_dim=8,
        c_dim=3,
        w_dim=8,
        img_resolution=8,
        img_channels=1,
        mapping_kwargs={"num_layers": 2},
        channel_base=64,
        channel_max=16,
        num_fp16_res=0,
    )
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "gray.safetensors", {"G_ema": G}, {"kimg": 0})


def test_same_seeds_byte_identical_rgb(parity_dir, tmp_path):
    pkl = parity_dir / "network-snapshot.pkl"
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        result = _run(
            "--network",
            pkl,
            "--seeds",
            "0-3",
            "--trunc",
            "0.7",
            "--noise-mode",
            "const",
            "--outdir",
            out,
            "--grid",
            out / "grid.png",
            "--batch",
            "3",
        )
        assert result.exit_code == 0, result.output
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == ["grid.png", "seed0000.png", "seed0001.png", "seed0002.png", "seed0003.png"]
    for name in names:
        data = (outs[0] / name).read_bytes()
        assert data == (outs[1] / name).read_bytes(), name
        assert _png_chunk_types(data) == ["IHDR"] + ["IDAT"] * (len(_png_chunk_types(data)) - 2) + ["IEND"]
    image = np.asarray(Image.open(outs[0] / "seed0002.png"))
    assert image.shape == (32, 32, 3)
    expected = generate_images(load_network(pkl)["G_ema"], [2], truncation_psi=0.7)[0]
    assert np.array_equal(image, expected)
    grid = Image.open(outs[0] / "grid.png")
    assert grid.size == (64, 64) and grid.mode == "RGB"


def test_gray_conditional_checkpoint(gray_checkpoint, tmp_path):
    result = _run("--network", gray_checkpoint, "--seeds", "5,7", "--class", "2", "--outdir", tmp_path)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "seed0005.png") as image:
        assert image.mode == "L" and image.size == (8, 8)
        pixels = np.asarray(image)
    G = load_network(gray_checkpoint)["G_ema"]
    assert np.array_equal(pixels, generate_images(G, [5], class_idx=2)[0, :, :, 0])


def test_class_errors(gray_checkpoint, tmp_path):
    missing = _run("--network", gray_checkpoint, "--seeds", "0", "--outdir", tmp_path)
    assert missing.exit_code == 2 and "3 classes" in missing.output and "none given" in missing.output
    out_of_range = _run("--network", gray_checkpoint, "--seeds", "0", "--class", "3", "--outdir", tmp_path)
    assert out_of_range.exit_code == 2 and "0 .. 2" in out_of_range.output
    assert not list(tmp_path.iterdir())


def test_bad_inputs(tmp_path):
    out = tmp_path / "out"
    missing = _run("--network", tmp_path / "nope.pkl", "--outdir", out)
    assert missing.exit_code == 2 and "nope.pkl" in missing.output and "no such file" in missing.output

    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00not a pickle at all")
    result = _run("--network", garbage, "--outdir", out)
    assert result.exit_code == 1 and "garbage.pkl" in result.output

    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": Payload()}))
    result = _run("--network", evil, "--outdir", out)
    assert result.exit_code == 1 and "refused" in result.output and "system" in result.output
    assert not marker.exists()

    result = _run("--network", garbage, "--seeds", "1-x", "--outdir", out)
    assert result.exit_code == 2 and "--seeds" in result.output
    assert not out.exists()


def test_png_has_no_metadata_even_from_pil_defaults():
    from medgan_core.utils.io import png_bytes

    data = png_bytes(np.zeros((4, 4), dtype=np.uint8))
    assert set(_png_chunk_types(data)) == {"IHDR", "IDAT", "IEND"}
    assert Image.open(io.BytesIO(data)).mode == "L"


@pytest.fixture
def served_parity_pickle(parity_dir, tmp_path, monkeypatch):
    """NVIDIA's parity pickle behind a local HTTP URL (standing in for NVIDIA's published URLs); fresh cache."""
    import functools
    import http.server
    import shutil
    import threading

    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(parity_dir / "network-snapshot.pkl", root / "stylegan2-parity.pkl")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("MEDGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDGAN_OFFLINE", raising=False)
    yield f"http://127.0.0.1:{httpd.server_address[1]}/stylegan2-parity.pkl"
    httpd.shutdown()
    httpd.server_close()


def test_network_url_gives_the_same_pixels_and_is_cached(served_parity_pickle, parity_dir, tmp_path, monkeypatch):
    by_path, by_url, offline = tmp_path / "path", tmp_path / "url", tmp_path / "offline"
    assert _run("--network", parity_dir / "network-snapshot.pkl", "--seeds", "0-2", "--outdir", by_path).exit_code == 0
    assert _run("--network", served_parity_pickle, "--seeds", "0-2", "--outdir", by_url).exit_code == 0
    for seed in range(3):
        name = f"seed{seed:04d}.png"
        assert (by_url / name).read_bytes() == (by_path / name).read_bytes()
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")  # now from the cache only
    assert _run("--network", served_parity_pickle, "--seeds", "0", "--outdir", offline).exit_code == 0
    assert (offline / "seed0000.png").read_bytes() == (by_path / "seed0000.png").read_bytes()


def test_network_url_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    monkeypatch.setenv("MEDGAN_CACHE", str(tmp_path / "cache"))
    url = (
        "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/stylegan2-ffhq-1024x1024.pkl"
    )
    result = _run("--network", url, "--outdir", tmp_path / "out")
    assert result.exit_code == 2 and url in result.output and "--network PATH" in result.output
    assert str(tmp_path / "cache" / "networks") in result.output  # the cache folder to put a copy in
    assert not (tmp_path / "out").exists()

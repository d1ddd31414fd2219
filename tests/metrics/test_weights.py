"""Finding and downloading the Inception and VGG16 weights, offline (file:// URLs and a patched urlopen)."""

import dataclasses
import hashlib
import urllib.request

import pytest

from medgan_core.metrics import weights
from medgan_core.metrics.inception import FID_WEIGHTS_URL


def test_no_weights_error_names_both_options_and_the_url(tmp_path):
    with pytest.raises(weights.InceptionWeightsNotFound) as info:
        weights.resolve_inception_weights(cache_dir=tmp_path)
    message = str(info.value)
    assert "--inception" in message and "MEDGAN_INCEPTION" in message and FID_WEIGHTS_URL in message


def test_explicit_path_then_environment(tmp_path, monkeypatch):
    explicit, from_env = tmp_path / "a.pth", tmp_path / "b.pth"
    explicit.write_bytes(b"a")
    from_env.write_bytes(b"b")
    monkeypatch.setenv("MEDGAN_INCEPTION", str(from_env))
    assert weights.resolve_inception_weights(explicit, cache_dir=tmp_path) == explicit
    assert weights.resolve_inception_weights(None, cache_dir=tmp_path) == from_env
    with pytest.raises(weights.InceptionWeightsNotFound, match="missing.pth is not a file"):
        weights.resolve_inception_weights(tmp_path / "missing.pth", cache_dir=tmp_path)


def _serve(monkeypatch, tmp_path, payload: bytes, prefix: str):
    """Point the download at a local file:// URL holding `payload`, expecting SHA-256 prefix `prefix`."""
    source = tmp_path / "served" / "pt_inception-2015-12-05-6726825d.pth"
    source.parent.mkdir()
    source.write_bytes(payload)
    spec = dataclasses.replace(weights.INCEPTION_WEIGHTS, url=source.as_uri(), sha256_prefix=prefix)
    monkeypatch.setattr(weights, "INCEPTION_WEIGHTS", spec)
    monkeypatch.delenv("MEDGAN_OFFLINE")


def test_download_with_hash_mismatch_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    _serve(monkeypatch, tmp_path, b"tampered weights", prefix="6726825d")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="SHA-256"):
        weights.resolve_inception_weights(cache_dir=cache, progress=False)
    assert list((cache / "inception").iterdir()) == []  # neither the file nor a temporary part


def test_good_download_is_cached_atomically_and_reused(tmp_path, monkeypatch):
    payload = b"pretend weights" * 1000
    _serve(monkeypatch, tmp_path, payload, prefix=hashlib.sha256(payload).hexdigest()[:8])
    cache = tmp_path / "cache"
    path = weights.resolve_inception_weights(cache_dir=cache, progress=False)
    assert path.read_bytes() == payload and path.parent == cache / "inception"
    assert [p.name for p in path.parent.iterdir()] == [path.name]

    def no_network(*args, **kwargs):
        raise AssertionError("the cached file must be reused")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert weights.resolve_inception_weights(cache_dir=cache) == path


def test_network_failure_gives_the_not_found_error(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    monkeypatch.delenv("MEDGAN_OFFLINE")
    with pytest.raises(weights.InceptionWeightsNotFound, match="download failed.*MEDGAN_INCEPTION"):
        weights.resolve_inception_weights(cache_dir=tmp_path, progress=False)


def test_vgg16_weights_resolve_like_inception(tmp_path, monkeypatch):
    with pytest.raises(weights.VGG16WeightsNotFound) as info:
        weights.resolve_vgg16_weights(cache_dir=tmp_path)
    message = str(info.value)
    assert "--vgg16" in message and "MEDGAN_VGG16" in message and weights.VGG16_WEIGHTS_URL in message
    from_env = tmp_path / "vgg.pth"
    from_env.write_bytes(b"v")
    monkeypatch.setenv("MEDGAN_VGG16", str(from_env))
    assert weights.resolve_vgg16_weights(cache_dir=tmp_path) == from_env
    monkeypatch.delenv("MEDGAN_VGG16")
    cached = tmp_path / "vgg16" / "vgg16-397923af.pth"
    cached.parent.mkdir()
    cached.write_bytes(b"c")
    assert weights.resolve_vgg16_weights(cache_dir=tmp_path) == cached

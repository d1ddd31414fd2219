"""resolve_network: local paths, URLs served by a local HTTP server, the cache, NVIDIA's cache, offline errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest

from medgan_core.checkpoint import fetch
from medgan_core.checkpoint.fetch import NetworkFetchError, network_cache_path, resolve_network


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dnnlib"))
    monkeypatch.delenv("MEDGAN_OFFLINE", raising=False)


@pytest.fixture
def server(tmp_path):
    """A local HTTP server for tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "stylegan2-tiny.pkl").write_bytes(b"\x80\x04 network bytes " * 100)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def test_local_paths(tmp_path):
    path = tmp_path / "net.pkl"
    path.write_bytes(b"x")
    assert resolve_network(path) == path and resolve_network(path.as_uri()) == path
    with pytest.raises(NetworkFetchError, match=r"missing\.pkl: no such file"):
        resolve_network(tmp_path / "missing.pkl")


def test_download_cache_and_hash_check(server, monkeypatch):
    base, root = server
    url = f"{base}/stylegan2-tiny.pkl"
    path = resolve_network(url, progress=False)
    assert path == network_cache_path(url) and path.read_bytes() == (root / "stylegan2-tiny.pkl").read_bytes()
    recorded = path.with_name(path.name + ".sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    assert resolve_network(url) == path  # from the cache, offline
    path.write_bytes(b"truncated")
    with pytest.raises(NetworkFetchError, match="SHA-256.*delete it to download it again"):
        resolve_network(url)


def test_a_known_hash_refuses_a_different_download(server, monkeypatch):
    base, _ = server
    url = f"{base}/stylegan2-tiny.pkl"
    monkeypatch.setitem(fetch.KNOWN_SHA256, url, "0" * 64)
    with pytest.raises(NetworkFetchError, match="download failed.*SHA-256"):
        resolve_network(url, progress=False)
    assert not network_cache_path(url).exists() and not list(network_cache_path(url).parent.iterdir())


def test_offline_error_names_url_cache_and_local_option(monkeypatch):
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    url = (
        "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/stylegan2-ffhq-1024x1024.pkl"
    )
    with pytest.raises(NetworkFetchError) as info:
        resolve_network(url)
    message = str(info.value)
    assert url in message and str(network_cache_path(url)) in message and "--network PATH" in message


def test_unreachable_server_is_the_same_clear_error(monkeypatch):
    url = "http://127.0.0.1:9/stylegan2-x.pkl"  # discard port: connection refused
    with pytest.raises(NetworkFetchError, match=r"download failed.*--resume PATH"):
        resolve_network(url, progress=False)


def test_reuses_nvidia_dnnlib_download_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    url = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/brecahad.pkl"
    cached = tmp_path / "dnnlib" / "downloads" / (hashlib.md5(url.encode()).hexdigest() + "_brecahad.pkl")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"pickle")
    assert resolve_network(url) == cached

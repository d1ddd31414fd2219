"""Networks named by URL: NVIDIA's published pickles downloaded once into a cache, or a clear error offline.

`resolve_network(path_or_url)` is what `--network` (generate, metrics, export) and the trainer's `--resume` call:
- a local path (or `file://` URL) is returned as a Path, with an error naming it when it does not exist;
- an `http(s)://` URL (e.g. NVIDIA's `https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/
  files/stylegan2-ffhq-1024x1024.pkl` or the stylegan2-ada-pytorch `nvlabs-fi-cdn.nvidia.com` pickles) is looked
  up in our cache, `<cache>/networks/<16 hex of SHA-256(url)>-<file name>` (cache = $MEDGAN_CACHE or
  ~/.cache/medgan), then in NVIDIA's own download cache (`$DNNLIB_CACHE_DIR` or ~/.cache/dnnlib,
  `downloads/<md5(url)>_*`, what their scripts leave behind), and otherwise downloaded into ours: a temporary
  name, renamed when complete. The SHA-256 of the download is written beside it (`<file>.sha256`) and checked
  whenever the cached file is used again (a truncated or altered file is refused, not loaded). Where a URL's
  hash is known in advance (`KNOWN_SHA256`), the download itself must match it.
- With $MEDGAN_OFFLINE=1 (or download=False) nothing is fetched: the error names the URL, the cache file and how
  to pass a local copy instead.
Downloaded pickles are still read only through the allow-list unpickler; nothing in them is executed.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import urllib.request
from pathlib import Path

from medgan_core.checkpoint.nvidia_pickle import CheckpointError
from medgan_core.utils.io import atomic_write

OFFLINE_ENV = "MEDGAN_OFFLINE"  # as medgan_core.metrics.weights, whose download helpers are imported when used

# url -> SHA-256 hex of the file, for URLs whose content has been verified; others are checked against the hash
# recorded at their first download.
KNOWN_SHA256: dict[str, str] = {}


class NetworkFetchError(CheckpointError, FileNotFoundError):
    """A network file or URL could not be found, fetched or verified (the message says what to do)."""


def is_url(value: str | os.PathLike) -> bool:
    return isinstance(value, str) and urllib.parse.urlparse(value).scheme in ("http", "https", "file")


def network_cache_path(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where `url` is cached: <cache>/networks/<16 hex of SHA-256(url)>-<file name of the URL>."""
    from medgan_core.metrics.weights import cache_root

    name = Path(urllib.parse.urlparse(url).path).name or "network.pkl"
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return cache_root(cache_dir) / "networks" / f"{key}-{name}"


def dnnlib_cached_file(url: str) -> Path | None:
    """The file NVIDIA's `dnnlib.util.open_url` cached for `url`, if any."""
    root = os.environ.get("DNNLIB_CACHE_DIR") or Path.home() / ".cache" / "dnnlib"
    matches = sorted((Path(root) / "downloads").glob(hashlib.md5(url.encode("utf-8")).hexdigest() + "_*"))
    return matches[0] if matches and matches[0].is_file() else None


def _verified(path: Path, url: str) -> Path:
    """`path` if its SHA-256 matches the known or recorded one; NetworkFetchError otherwise."""
    from medgan_core.metrics.weights import sha256_file

    record = path.with_name(path.name + ".sha256")
    expected = KNOWN_SHA256.get(url) or (record.read_text().split()[0] if record.is_file() else None)
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise NetworkFetchError(
                f"{path} (cached from {url}) has SHA-256 {actual}, expected {expected}: the file is damaged or "
                "changed; delete it to download it again"
            )
    return path


def _offline_message(url: str, cached: Path, reason: str) -> str:
    return (
        f"cannot fetch {url}: {reason}. Download it where there is internet access and either pass the local "
        f"file (--network PATH / --resume PATH) or put it at {cached} (cache folder {cached.parent}; set "
        f"$MEDGAN_CACHE to move it)"
    )


def resolve_network(
    path_or_url: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    progress: bool = True,
) -> Path:
    """A local path for `path_or_url` (see the module docstring). download: None means "unless $MEDGAN_OFFLINE"."""
    if not is_url(path_or_url):
        path = Path(path_or_url).expanduser()
        if not path.is_file():
            raise NetworkFetchError(f"{path}: no such file (expected a network .pkl, a .safetensors or a URL)")
        return path
    from medgan_core.metrics.weights import download_file, sha256_file

    url = str(path_or_url)
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return resolve_network(urllib.request.url2pathname(parsed.path))
    cached = network_cache_path(url, cache_dir)
    if cached.is_file():
        return _verified(cached, url)
    nvidia_cached = dnnlib_cached_file(url)
    if nvidia_cached is not None and (url not in KNOWN_SHA256 or sha256_file(nvidia_cached) == KNOWN_SHA256[url]):
        return nvidia_cached
    if download is None:
        download = os.environ.get(OFFLINE_ENV, "").lower() not in ("1", "true", "yes")
    if not download:
        raise NetworkFetchError(_offline_message(url, cached, f"offline (${OFFLINE_ENV}) and not in the cache"))
    try:
        download_file(url, cached, KNOWN_SHA256.get(url), progress=progress)
    except (OSError, ValueError) as exc:  # URLError, HTTP errors and timeouts are OSErrors; ValueError: hash
        raise NetworkFetchError(_offline_message(url, cached, f"download failed ({exc})")) from exc
    with atomic_write(cached.with_name(cached.name + ".sha256"), "w") as f:
        f.write(f"{sha256_file(cached)}  {url}\n")
    return cached

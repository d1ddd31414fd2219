"""Finding the Inception weights: an explicit path, $MEDGAN_INCEPTION, the cache, or a checked download.

Order of resolution (`resolve_inception_weights`):
1. the `inception` argument (`--inception PATH` on the command line);
2. the environment variable `MEDGAN_INCEPTION`;
3. pytorch-fid's weight file already in the cache folder (`$MEDGAN_CACHE` or `~/.cache/medgan`, under
   `inception/`);
4. a download of that file from pytorch-fid's release URL into the cache, refused unless its SHA-256 starts with
   `6726825d` (the hash prefix in the file name), written to a temporary name and renamed only when complete.
   Set `MEDGAN_OFFLINE=1` to never try the network.
If none works, `InceptionWeightsNotFound` names `--inception`, `MEDGAN_INCEPTION` and the URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from medgan_core.metrics.inception import FID_WEIGHTS_SHA256_PREFIX, FID_WEIGHTS_URL

INCEPTION_ENV = "MEDGAN_INCEPTION"
CACHE_ENV = "MEDGAN_CACHE"
OFFLINE_ENV = "MEDGAN_OFFLINE"
# NVIDIA's detector for StyleGAN3 / EDM (a pickle) and for StyleGAN2-ADA (a TorchScript archive); accepted as
# `--inception PATH`, never downloaded automatically (their licence differs from pytorch-fid's Apache-2.0 file).
NVIDIA_DETECTOR_URLS = (
    "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/inception-2015-12-05.pkl",
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
)


class InceptionWeightsNotFound(FileNotFoundError):
    """No Inception weights could be found or downloaded."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The medgan cache folder: `cache_dir`, else $MEDGAN_CACHE, else ~/.cache/medgan."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "medgan")


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str, destination: str | os.PathLike, sha256_prefix: str | None = None, progress: bool = True
) -> Path:
    """Download `url` to `destination` atomically; refuse (and delete) it if its SHA-256 lacks `sha256_prefix`."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name, disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if sha256_prefix and not actual.startswith(sha256_prefix):
            raise ValueError(
                f"download of {url} has SHA-256 {actual}, expected one starting with {sha256_prefix}; "
                "the file was discarded (corrupted download or a changed file at that URL)"
            )
        os.replace(tmp_name, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return destination


def _not_found_message(detail: str) -> str:
    return (
        f"Inception-v3 weights not found ({detail}). Pass --inception PATH (Python: inception=PATH) or set "
        f"{INCEPTION_ENV}=PATH to pytorch-fid's pt_inception-2015-12-05-6726825d.pth (download it from "
        f"{FID_WEIGHTS_URL}) or to NVIDIA's inception-2015-12-05.pkl/.pt ({NVIDIA_DETECTOR_URLS[0]})."
    )


def resolve_inception_weights(
    inception: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    progress: bool = True,
) -> Path:
    """Path of the Inception weight file to use (see the module docstring for the order).

    download: None means "unless $MEDGAN_OFFLINE is set".
    """
    if inception is not None:
        path = Path(inception).expanduser()
        if not path.is_file():
            raise InceptionWeightsNotFound(_not_found_message(f"--inception {path} is not a file"))
        return path
    env_value = os.environ.get(INCEPTION_ENV)
    if env_value:
        path = Path(env_value).expanduser()
        if not path.is_file():
            raise InceptionWeightsNotFound(_not_found_message(f"{INCEPTION_ENV}={path} is not a file"))
        return path
    cached = cache_root(cache_dir) / "inception" / FID_WEIGHTS_URL.rsplit("/", 1)[-1]
    if cached.is_file():
        return cached
    if download is None:
        download = os.environ.get(OFFLINE_ENV, "").lower() not in ("1", "true", "yes")
    if not download:
        raise InceptionWeightsNotFound(_not_found_message(f"offline, and nothing cached at {cached}"))
    try:
        return download_file(FID_WEIGHTS_URL, cached, FID_WEIGHTS_SHA256_PREFIX, progress=progress)
    except OSError as exc:  # URLError, timeouts and HTTP errors are OSErrors
        raise InceptionWeightsNotFound(_not_found_message(f"download failed: {exc}")) from exc

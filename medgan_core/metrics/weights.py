"""Finding detector weights (Inception, VGG16): an explicit path, $MEDGAN_INCEPTION, the cache, or a checked download.

Order of resolution (`resolve_inception_weights`):
1. the `inception` argument (`--inception PATH` on the command line);
2. the environment variable `MEDGAN_INCEPTION`;
3. pytorch-fid's weight file already in the cache folder (`$MEDGAN_CACHE` or `~/.cache/medgan`, under
   `inception/`);
4. a download of that file from pytorch-fid's release URL into the cache, refused unless its SHA-256 starts with
   `6726825d` (the hash prefix in the file name), written to a temporary name and renamed only when complete.
   Set `MEDGAN_OFFLINE=1` to never try the network.
If none works, `InceptionWeightsNotFound` names `--inception`, `MEDGAN_INCEPTION` and the URL.

The VGG16 weights of precision/recall resolve the same way (`resolve_vgg16_weights`): `--vgg16 PATH`,
$MEDGAN_VGG16, `<cache>/vgg16/vgg16-397923af.pth`, or torchvision's URL checked against the hash prefix `397923af`;
else `VGG16WeightsNotFound` names `--vgg16`, `MEDGAN_VGG16` and the URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from medgan_core.metrics.inception import FID_WEIGHTS_SHA256_PREFIX, FID_WEIGHTS_URL
from medgan_core.metrics.vgg16 import NVIDIA_VGG16_URLS, VGG16_SHA256_PREFIX, VGG16_WEIGHTS_URL

INCEPTION_ENV = "MEDGAN_INCEPTION"
VGG16_ENV = "MEDGAN_VGG16"
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


class VGG16WeightsNotFound(FileNotFoundError):
    """No VGG16 weights (for precision/recall) could be found or downloaded."""


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


@dataclass(frozen=True)
class WeightSpec:
    """How one detector's weights are found: option, environment variable, cache file and download."""

    what: str  # e.g. "Inception-v3"
    option: str  # command-line option, e.g. "--inception"
    env: str  # environment variable
    url: str  # standard download URL (its last component is the cached file name)
    sha256_prefix: str  # a download must have a SHA-256 starting with this
    subdir: str  # folder under the cache root
    accepted: str  # what files the path may name (for the error message)
    error: type = FileNotFoundError

    def not_found(self, detail: str) -> FileNotFoundError:
        return self.error(
            f"{self.what} weights not found ({detail}). Pass {self.option} PATH (Python: "
            f"{self.option.lstrip('-').replace('-', '_')}=PATH) or set {self.env}=PATH to {self.accepted}"
        )

    def resolve(
        self,
        path: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        download: bool | None = None,
        progress: bool = True,
    ) -> Path:
        """Path of the weight file: `path`, else $env, else the cache, else a checked download.

        download: None means "unless $MEDGAN_OFFLINE is set". Raises self.error naming the option, the variable
        and the URL when nothing works.
        """
        if path is not None:
            path = Path(path).expanduser()
            if not path.is_file():
                raise self.not_found(f"{self.option} {path} is not a file")
            return path
        env_value = os.environ.get(self.env)
        if env_value:
            path = Path(env_value).expanduser()
            if not path.is_file():
                raise self.not_found(f"{self.env}={path} is not a file")
            return path
        cached = cache_root(cache_dir) / self.subdir / self.url.rsplit("/", 1)[-1]
        if cached.is_file():
            return cached
        if download is None:
            download = os.environ.get(OFFLINE_ENV, "").lower() not in ("1", "true", "yes")
        if not download:
            raise self.not_found(f"offline, and nothing cached at {cached}")
        try:
            return download_file(self.url, cached, self.sha256_prefix, progress=progress)
        except OSError as exc:  # URLError, timeouts and HTTP errors are OSErrors
            raise self.not_found(f"download failed: {exc}") from exc


def _detector_weights(name: str, what: str, url: str, sha256_prefix: str, source: str, nvidia_url: str, error: type):
    """The spec of a detector known as `name`: option --name, $MEDGAN_NAME, cache folder name/, `url` (whose
    file `source` publishes) or NVIDIA's pickle of the same network at `nvidia_url` (accepted, never downloaded)."""
    nvidia_stem = nvidia_url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return WeightSpec(
        what=what,
        option=f"--{name}",
        env=f"MEDGAN_{name.upper()}",
        url=url,
        sha256_prefix=sha256_prefix,
        subdir=name,
        accepted=f"{source}'s {url.rsplit('/', 1)[-1]} (download it from {url}) or to NVIDIA's "
        f"{nvidia_stem}.pkl/.pt ({nvidia_url}).",
        error=error,
    )


INCEPTION_WEIGHTS = _detector_weights(
    "inception", "Inception-v3", FID_WEIGHTS_URL, FID_WEIGHTS_SHA256_PREFIX, "pytorch-fid", NVIDIA_DETECTOR_URLS[0],
    InceptionWeightsNotFound,
)  # fmt: skip
VGG16_WEIGHTS = _detector_weights(
    "vgg16", "VGG16", VGG16_WEIGHTS_URL, VGG16_SHA256_PREFIX, "torchvision", NVIDIA_VGG16_URLS[0], VGG16WeightsNotFound
)


def resolve_inception_weights(inception=None, cache_dir=None, download=None, progress=True) -> Path:
    """Path of the Inception weight file to use (see the module docstring for the order; `WeightSpec.resolve`)."""
    return INCEPTION_WEIGHTS.resolve(inception, cache_dir, download, progress)


def resolve_vgg16_weights(vgg16=None, cache_dir=None, download=None, progress=True) -> Path:
    """Path of the VGG16 weight file (for precision/recall): `--vgg16`, $MEDGAN_VGG16, the cache, a download."""
    return VGG16_WEIGHTS.resolve(vgg16, cache_dir, download, progress)

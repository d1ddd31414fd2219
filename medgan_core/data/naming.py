"""Keyed, unlinkable output names: a secret key turns a source's path into its PNG name prefix.

A plain hash of a source path lets anyone who guesses a patient's folder name (``DOE_JANE_MRN0042``) confirm it
from the outputs. `medgan prep` therefore names a source by an HMAC-SHA256 of its path relative to ``--src``
under a key that stays with the user, outside the output folder: with the key, reruns give the same names (and
so the same splits); without it, names cannot be linked to sources, by anyone, the user included.

Where the key comes from, first match wins:

1. ``--key-file PATH`` (``run_prep(key_file=...)``), or the ``MEDGAN_KEY_FILE`` environment variable: the file
   must exist;
2. recipes of public files shipped in PyPI packages (``inputs.kind: bundled``, e.g. mni-brain): a fixed public
   key, so their names are the same on every machine (there is no patient to protect);
3. ``$XDG_CONFIG_HOME/medgan/naming.key`` (``~/.config/medgan/naming.key``), created with 32 random bytes
   (readable by the owner only) the first time, with a message saying where it is.

Keep the key like a password: back it up beside the raw data (not beside the PNGs you share), never put it
under ``--out``. A lost key only means that a rerun names every slice anew (and remakes them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

KEY_FILE_ENV = "MEDGAN_KEY_FILE"
PUBLIC_KEY = b"medgan: public sources shipped in PyPI packages"
NAME_HEX_DIGITS = 12  # 48 bits: two of 150,000 sources share a name with probability ~4e-5 (then prep stops)
MIN_KEY_BYTES = 16


@dataclasses.dataclass(frozen=True)
class NamingKey:
    """The secret, where it came from (a file, or None for the public key) and whether it was just created."""

    secret: bytes = dataclasses.field(repr=False)
    path: Path | None = None
    created: bool = False

    def message(self) -> str | None:
        """What to tell the user about a key created by this run (None otherwise)."""
        if not self.created:
            return None
        return (
            f"created a new naming key at {self.path}: output names are keyed by it. Keep it (back it up with "
            "the raw data, never inside an output folder): the same key gives the same names and splits on a "
            f"rerun; without it names cannot be linked to sources. Choose another with --key-file or ${KEY_FILE_ENV}."
        )


def default_key_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "medgan" / "naming.key"


def resolve_key(key_file: str | Path | None, out: str | Path, public_sources: bool = False) -> NamingKey:
    """The key for a run writing to `out` (see the module docstring for the order); refuses one under `out`."""
    given = key_file if key_file is not None else os.environ.get(KEY_FILE_ENV) or None
    if given is None and public_sources:
        return NamingKey(PUBLIC_KEY)
    path = Path(given).expanduser() if given is not None else default_key_path()
    out_dir = Path(out).resolve()
    if path.resolve().is_relative_to(out_dir):
        raise ValueError(f"naming key {path} lies inside the output folder {out}: keep it outside (see --key-file)")
    created = False
    if not path.is_file():
        if given is not None:
            raise FileNotFoundError(
                f"naming key {path} not found (from --key-file or ${KEY_FILE_ENV}); give an existing key file, or "
                f"unset both to use {default_key_path()} (created when missing)"
            )
        try:
            create_key_file(path)
        except OSError as exc:
            raise ValueError(f"cannot create naming key {path} ({exc}); give one with --key-file") from None
        created = True
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"cannot read naming key {path} ({exc})") from None
    if len(secret) < MIN_KEY_BYTES:
        raise ValueError(f"naming key {path} holds {len(secret)} bytes; use at least {MIN_KEY_BYTES} random bytes")
    return NamingKey(secret, path, created)


def create_key_file(path: Path) -> None:
    """Write a new key of 32 random bytes (hex) to `path`, readable by its owner only; refuses to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_hex(32) + "\n")


def source_id(key: NamingKey, relative: str) -> str:
    """Anonymous name of a source: 12 hex digits of HMAC-SHA256(key, its POSIX path relative to --src)."""
    digest = hmac.new(key.secret, b"source\0" + relative.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:NAME_HEX_DIGITS]


def input_digest(key: NamingKey, settings: str, files: Iterable[tuple[str, Path]]) -> str:
    """Keyed digest of what a source's slices depend on: `settings` text and (label, file) contents.

    Keyed, so that the index does not let anyone test whether a given scan file is in the data set.
    """
    mac = hmac.new(key.secret, b"inputs\0" + settings.encode("utf-8"), hashlib.sha256)
    for label, path in files:
        mac.update(f"\0file\0{label}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                mac.update(chunk)
    return mac.hexdigest()

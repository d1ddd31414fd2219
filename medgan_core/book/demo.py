"""The demo's shared steps: embedded data -> a small training set, short CPU training runs, generated folders.

These wrap the library's own entry points (`Recipe` + `run_prep`, `make_dataset_zip`, the trainer's `launch`,
`generate_images`) with the small choices a CPU demo needs: a lower resolution than the recipe's 256 pixels and
narrow networks. Nothing here changes what the library computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medgan_core.utils.io import save_png


def prepare_slices(recipe: str, out, src=None, progress: bool = False, key_file=None):
    """Run preprocessing recipe `recipe` (a manifest name) into `out`; returns the PrepReport (reruns skip work).
    `key_file`: the naming key (default as `medgan prep`: $MEDGAN_KEY_FILE, else ~/.config/medgan/naming.key)."""
    from medgan_core.data.pipeline import run_prep
    from medgan_core.data.recipes import Recipe

    return run_prep(Recipe.from_name(recipe), src, out, workers=1, progress=progress, key_file=key_file)


def phantom_key(phantom) -> Path:
    """The synthetic phantom's own naming key, `<phantom>.naming.key` beside it (created when missing).

    The phantom holds no patient, so its key protects nothing; it keeps the book from creating a key in the
    reader's ~/.config (and from printing that path on a page)."""
    from medgan_core.data.naming import create_key_file

    path = Path(f"{Path(phantom)}.naming.key")
    if not path.is_file():
        create_key_file(path)
    return path


CT_PHANTOM_SHAPE = (16, 512, 512)  # [Z, Y, X]: a 512 x 512 in-plane grid, like a real abdominal CT
CT_PHANTOM_CASES = 6
PHANTOM_VERSION = 2  # bumped whenever `medgan_core.data.phantoms` draws the phantom differently


def write_ct_phantom(root, cases: int = CT_PHANTOM_CASES, shape_zyx=CT_PHANTOM_SHAPE) -> Path:
    """The synthetic liver CT phantom in the in-house layout (images/ + masks/, NIfTI and one DICOM series): a
    varied synthetic CT population, one seeded body per case (`medgan_core.data.phantoms.ct_case`).

    Rewritten when `root/phantom.json` records other settings (an older phantom, other cases or shape)."""
    import json
    import shutil

    from medgan_core.data.phantoms import write_liver_ct_phantom

    root = Path(root)
    settings = dict(version=PHANTOM_VERSION, cases=cases, shape_zyx=list(shape_zyx))
    stamp = root / "phantom.json"
    if (root / "masks").is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == settings:
        return root
    for folder in ("images", "masks"):
        shutil.rmtree(root / folder, ignore_errors=True)
    write_liver_ct_phantom(root, cases=cases, shape_zyx=tuple(shape_zyx))
    stamp.write_text(json.dumps(settings) + "\n")
    return root


def downscale_folder(src, dest, resolution: int) -> Path:
    """Every PNG of `src` resized to `resolution` x `resolution` (Lanczos) into `dest` (same names; skips done)."""
    src, dest = Path(src), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(src.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"{src}: no PNG slices; run the data chapter (or `medgan prep`) first")
    for path in files:
        target = dest / path.name
        if target.is_file():
            continue
        with Image.open(path) as image:
            small = image.convert("L").resize((resolution, resolution), Image.LANCZOS)
        save_png(np.asarray(small), target)
    return dest


def training_set(slices, work, resolution: int) -> Path:
    """PNG slices -> `work`/<name>-<resolution>.zip (StyleGAN2-ADA layout), downscaling when needed."""
    from medgan_core.data.packaging import make_dataset_zip

    slices, work = Path(slices), Path(work)
    dest = work / f"{slices.name}-{resolution}.zip"
    if dest.is_file():
        return dest
    with Image.open(next(iter(sorted(slices.glob("*.png"))))) as first:
        side = first.size[0]
    folder = (
        slices if side == resolution else downscale_folder(slices, work / f"{slices.name}-{resolution}", resolution)
    )
    make_dataset_zip(folder, dest, resolution=resolution)
    return dest


def fid_available(metric: str = "fid50k_full", inception=None) -> tuple[bool, str]:
    """Whether the Inception weights FID needs can be found here (never raises): (available, why not)."""
    from medgan_core.metrics.runner import is_available

    try:
        return is_available(metric, inception)
    except Exception as exc:  # a broken weight file must not stop a chapter: it shows the reason instead
        return False, f"{type(exc).__name__}: {exc}"


def train(run_dir, data, **options) -> Path:
    """Train one run into exactly `run_dir` with the `medgan train` command (skipped when it finished before).

    `options` are the command's options with underscores (`map=2`, `fp32=True`, `resume=None` leaves it out). The
    command runs in a child process (the same interpreter); the trainer keeps what it printed in run_dir/log.txt.
    """
    import shutil
    import subprocess
    import sys

    run_dir = Path(run_dir)
    if (run_dir / "done.txt").is_file():
        return run_dir
    if run_dir.is_dir():  # an interrupted earlier attempt: its stats.jsonl would be appended to, so start afresh
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # `python -m medgan_core.train` is `medgan train`, and can restart itself with the tuned CPU allocator
    args = [sys.executable, "-m", "medgan_core.train", "--outdir", str(run_dir.parent), "--data", str(data),
            "--run-dir", str(run_dir)]  # fmt: skip
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        elif value is not None:
            args += [flag, str(value)]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stderr or result.stdout)[-2000:]
        raise RuntimeError(f"medgan train failed (exit {result.returncode}):\n{output}")
    (run_dir / "done.txt").write_text("finished\n")
    return run_dir


def generate_folder(snapshot, out, seeds, truncation_psi: float = 1.0) -> Path:
    """Images of `seeds` from a snapshot's G_ema as PNGs `seed%04d.png` in `out` (skipped when all exist)."""
    from medgan_core.checkpoint import load_network
    from medgan_core.generate import generate_images

    out = Path(out)
    seeds = list(seeds)
    if out.is_dir() and all((out / f"seed{s:04d}.png").is_file() for s in seeds):
        return out
    G = load_network(snapshot)["G_ema"]
    images = generate_images(G, seeds, truncation_psi=truncation_psi)
    for seed, image in zip(seeds, images):
        save_png(image[:, :, 0] if image.shape[-1] == 1 else image, out / f"seed{seed:04d}.png")
    return out


def export_for_transfer(snapshot, dest) -> Path:
    """A snapshot's networks without its training state, so that `--resume` transfers weights instead of
    continuing that run (the demo's stand-in for NVIDIA's FFHQ pickle)."""
    from medgan_core.checkpoint import load_network, save_checkpoint

    dest = Path(dest)
    if dest.is_file():
        return dest
    loaded = load_network(snapshot)
    networks = {key: loaded[key] for key in ("G", "D", "G_ema") if loaded[key] is not None}
    save_checkpoint(dest, networks, record={"exported_from": Path(snapshot).name, "purpose": "transfer source"})
    return dest


def run_name(experiment: int, seed: int) -> str:
    """Folder name of one ablation run below the runs root: 'exp<k>-seed<s>'."""
    return f"exp{experiment}-seed{seed}"

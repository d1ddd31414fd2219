"""Throughput of `medgan prep` on one 512 x 512 x 200 CT volume against the PNG-encoding floor.

Prints slices/s for the liver-ct recipe (read NIfTI, reorient, window, mask selection, pad, encode, atomic
write, index) with 1 and 2 writer threads, beside the time to PNG-encode the same windowed slices alone in one
thread (the floor). The target is a ratio (time / (floor / workers)) within 1.5 per worker. Ratios come from
runs in this one process, so they compare like with like on whatever machine runs the script.

    python benchmarks/bench_prep.py [--slices 200] [--size 512] [--repeats 3] [--gzip]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from medgan_core.data import phantoms, transforms
from medgan_core.data.pipeline import run_prep
from medgan_core.data.recipes import Recipe
from medgan_core.utils.io import png_bytes


def make_source(root: Path, slices: int, size: int, gzip: bool) -> None:
    """A liver-ct source folder: one CT volume whose mask marks liver on every slice (all slices kept)."""
    hu, _ = phantoms.ct_phantom((slices, size, size), seed=0)
    mask = np.ones_like(hu, dtype=np.uint8)
    suffix = ".nii.gz" if gzip else ".nii"
    phantoms.write_nifti_ras(root / "images" / f"bench{suffix}", hu)
    phantoms.write_nifti_ras(root / "masks" / f"bench{suffix}", mask)


def encode_floor(root: Path, gzip: bool, threads: int = 1) -> float:
    """Seconds to PNG-encode every windowed slice once (pixels prepared beforehand), on `threads` threads."""
    from concurrent.futures import ThreadPoolExecutor

    from medgan_core.data.readers import read_image

    suffix = ".nii.gz" if gzip else ".nii"
    hu, _ = read_image(root / "images" / f"bench{suffix}")
    display = np.ascontiguousarray(transforms.window(hu, 50, 350))
    started = time.perf_counter()
    if threads == 1:
        for image in display:
            png_bytes(image)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(png_bytes, display))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs per setting")
    parser.add_argument("--gzip", action="store_true", help="store the volume as .nii.gz (adds decompression)")
    args = parser.parse_args()

    recipe = Recipe.from_name("liver-ct")
    with tempfile.TemporaryDirectory(prefix="bench_prep_") as tmp:
        root = Path(tmp)
        make_source(root / "src", args.slices, args.size, args.gzip)
        count = args.slices
        print(f"volume {args.size}x{args.size}x{args.slices} ({'nii.gz' if args.gzip else 'nii'})")
        floors = {1: float("inf"), 2: float("inf")}
        preps = {1: float("inf"), 2: float("inf")}
        for _ in range(args.repeats):  # interleaved, best of N: other load on the machine hits both alike
            for workers in (1, 2):
                floors[workers] = min(floors[workers], encode_floor(root / "src", args.gzip, workers))
                out = root / f"out{workers}"
                shutil.rmtree(out, ignore_errors=True)
                started = time.perf_counter()
                report = run_prep(recipe, root / "src", out, workers=workers, progress=False)
                preps[workers] = min(preps[workers], time.perf_counter() - started)
                assert report.made == count and not report.failures, report.summary()
        floor = floors[1]
        print(f"floor (PNG encode only, 1 thread): {floor:.2f} s = {count / floor:.1f} slices/s")
        for workers in (1, 2):
            best = preps[workers]
            print(
                f"prep, {workers} worker(s): {best:.2f} s = {count / best:.1f} slices/s; "
                f"ratio to floor/{workers}: {best / (floor / workers):.2f} (target <= 1.5); "
                f"encode-only on {workers} thread(s): {floors[workers]:.2f} s, ratio {best / floors[workers]:.2f}"
            )


if __name__ == "__main__":
    main()

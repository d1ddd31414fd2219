"""Training speed in sec/kimg: `medgan train` in subprocesses, one per setting, on a synthetic disc dataset.

CPU (default): 32x32 and 64x64 grayscale, each with the glibc allocator as is (baseline) and tuned
(MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_=64 GiB), plus jemalloc / tcmalloc when Debian's libraries are
installed; prints sec/kimg, peak RSS and the speed-up over the baseline.
GPU (`--device cuda --res 256,512`): fp32 (--fp32) and mixed precision, on one GPU.

    python benchmarks/bench_train.py                       # CPU, 32 and 64, tiny nets, 0.2 kimg
    python benchmarks/bench_train.py --res 64 --cbase 16384 --cmax 512 --kimg 0.1
    python benchmarks/bench_train.py --device cuda --res 256,512 --kimg 2 --batch 32 --cbase 32768
    python benchmarks/bench_train.py --records --batch 16 --cmax 64 --kimg 1 --cpu-settings threads1,threads2,ranks2
sec/kimg is the last tick's (the first tick includes warm-up); numbers come from stats.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_discs(folder: Path, resolution: int, count: int = 64, seed: int = 0) -> Path:
    """Grayscale bright discs on a dark background (a dataset with obvious structure)."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:resolution, :resolution]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cx, cy = rng.uniform(0.3, 0.7, 2) * resolution
        radius = rng.uniform(0.12, 0.25) * resolution
        image = np.where((xx - cx) ** 2 + (yy - cy) ** 2 < radius**2, 220, 30).astype(np.uint8)
        Image.fromarray(image).save(folder / f"img{i:05d}.png")
    return folder


# The book's records (issue 27): `medgan train --fp32 --map 2 --cbase 1024 --cmax 64 --batch 16 --gamma G --beta1 0
# --aug ada --augpipe bg --ada-kimg 100 --mirror`, gamma 0.0128 at 32x32 and 0.05 at 64x64; here with a fixed p of
# 0.2 (ADA's p, starting at 0, would stay near 0 over a short benchmark and skip most of the augment pipe's work).
RECORD_GAMMA = {32: 0.0128, 64: 0.05}
RECORD_OPTIONS = ["--fp32", "--beta1", "0", "--aug", "fixed", "--p", "0.2", "--augpipe", "bg", "--mirror"]


def cpu_setting_args(setting: str) -> tuple[list[str], dict[str, str]]:
    """'threadsN' -> one process of N threads; 'ranksN' -> N gloo ranks (medgan gives each cores // N threads);
    'auto' -> --gpus left to medgan. Returns (extra arguments, extra environment)."""
    if setting.startswith("threads"):
        return ["--gpus", "1"], {"OMP_NUM_THREADS": setting[len("threads") :]}
    if setting.startswith("ranks"):
        return ["--gpus", setting[len("ranks") :]], {}
    if setting == "auto":
        return [], {}
    raise ValueError(f"unknown CPU setting {setting!r}: threadsN, ranksN or auto")


def run_once(data: Path, run_dir: Path, args, allocator: str, fp32: bool, setting: str | None = None,
             resolution: int = 0) -> dict:  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "medgan_core.train",
        "--outdir",
        str(run_dir.parent),
        "--data",
        str(data),
        "--run-dir",
        str(run_dir),
        "--kimg",
        str(args.kimg),
        "--tick",
        str(args.kimg / 2),
        "--snap",
        "1000",
        "--batch",
        str(args.batch),
        "--cbase",
        str(args.cbase),
        "--cmax",
        str(args.cmax),
        "--map",
        str(args.map),
        "--gamma",
        "1",
        "--metrics",
        "none",
        "--workers",
        str(args.workers),
        "--device",
        args.device,
        "--allocator",
        allocator,
        "--aug",
        "ada",
    ]
    if fp32:
        command.append("--fp32")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MEDGAN_ALLOCATOR", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD", "OMP_NUM_THREADS")
    }
    if args.records:  # later options win: the records' gamma and augmentation
        command += [*RECORD_OPTIONS, "--gamma", str(RECORD_GAMMA.get(resolution, 0.05))]
    if setting is not None:
        extra_args, extra_env = cpu_setting_args(setting)
        command += extra_args
        env.update(extra_env)
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if result.returncode != 0:
        return dict(error=(result.stdout + result.stderr)[-2000:])
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    last = stats[-1]
    log = (run_dir / "log.txt").read_text() if (run_dir / "log.txt").is_file() else ""
    cpu_line = next((line for line in log.splitlines() if line.startswith("CPU setting:")), "")
    rss = max(s.get("Resources/cpu_mem_gb", {}).get("mean", float("nan")) for s in stats)
    gpu = max(s.get("Resources/peak_gpu_mem_gb", {}).get("mean", float("nan")) for s in stats)
    return dict(sec_per_kimg=last["Timing/sec_per_kimg"]["mean"], rss_gb=rss, gpu_gb=gpu, cpu_line=cpu_line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", default="32,64", help="comma-separated resolutions")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--kimg", type=float, default=0.2, help="training length per setting")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cbase", type=int, default=1024)
    parser.add_argument("--cmax", type=int, default=32)
    parser.add_argument("--map", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats; the median is printed")
    parser.add_argument(
        "--allocators",
        default=None,
        help="CPU allocators to compare (default: default,tuned + jemalloc/tcmalloc if installed)",
    )
    parser.add_argument(
        "--records",
        action="store_true",
        help="the book's record options (fp32, --gamma per resolution, Adam beta1 0, --augpipe bg at p 0.2, "
        "--mirror); use with --batch 16 --cmax 64",
    )
    parser.add_argument(
        "--cpu-settings",
        default=None,
        help="compare CPU settings instead of allocators (tuned allocator): e.g. threads1,threads2,ranks2,auto",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from medgan_core.training.allocator import find_library

    if args.device == "cpu":
        allocators = (
            args.allocators.split(",")
            if args.allocators
            else ["default", "tuned"] + [name for name in ("jemalloc", "tcmalloc") if find_library(name)]
        )
        settings = [(name, True) for name in allocators]  # CPU runs are fp32 anyway
        if args.cpu_settings:
            settings = [(f"tuned:{name}", True) for name in args.cpu_settings.split(",")]
    else:
        settings = [("default", True), ("default", False)]
    print(
        f"bench_train: device {args.device}, batch {args.batch}, cbase {args.cbase}, cmax {args.cmax}, "
        f"map {args.map}, {args.kimg} kimg per setting, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for resolution in [int(r) for r in args.res.split(",")]:
            data = make_discs(Path(tmp) / f"discs{resolution}", resolution)
            results: dict[tuple, list[dict]] = {setting: [] for setting in settings}
            for repeat in range(args.repeats):  # interleaved, so that load changes hit every setting alike
                for allocator, fp32 in settings:
                    run_dir = Path(tmp) / f"run-{resolution}-{allocator.replace(':', '-')}-{fp32}-{repeat}"
                    name, _, cpu = allocator.partition(":")
                    results[(allocator, fp32)].append(
                        run_once(data, run_dir, args, name, fp32, setting=cpu or None, resolution=resolution)
                    )
            baseline = None
            for (allocator, fp32), runs in results.items():
                label = f"{resolution}x{resolution} {allocator:>8s} {'fp32' if fp32 else 'mixed'}"
                ok = [r for r in runs if "error" not in r]
                if not ok:
                    print(f"{label}: failed\n{runs[0]['error']}")
                    continue
                sec = float(np.median([r["sec_per_kimg"] for r in ok]))
                rss = max(r["rss_gb"] for r in ok)
                gpu = max(r["gpu_gb"] for r in ok)
                baseline = baseline or sec
                print(
                    f"{label}: {sec:8.2f} sec/kimg (median of {len(ok)})  peak RSS {rss:.2f} GiB  "
                    f"peak GPU {gpu:.2f} GiB  speed-up vs {settings[0][0]}: {baseline / sec:.2f}x"
                    + (f"  [{ok[0]['cpu_line']}]" if ok[0].get("cpu_line") else ""),
                    flush=True,
                )


if __name__ == "__main__":
    main()

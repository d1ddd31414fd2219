"""Recorded training runs for the book: what `medgan train` wrote, copied into `book/records/<name>/`.

A record is made by `book/records/make_records.sh` from a clean clone of one commit and is never edited by hand.
Each run folder keeps the trainer's own files (stats.jsonl, training_options.json, log.txt, image grids,
metric-*.jsonl, best.json) and, where asked, the final G_ema as safetensors. The record's README.md states the
exact command, commit, machine, threads and wall time.

    python -m medgan_core.book.records collect RUN_DIR DEST [--weights]
    python -m medgan_core.book.records readme RECORD_DIR --command ... --commit ... --threads N --seconds S
    python -m medgan_core.book.records collapse RUN_DIR    # where the run was in mode collapse (div128)
    python -m medgan_core.book.records trained-seconds RUN_DIR...   # training time over every attempt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

KEEP = ("stats.jsonl", "training_options.json", "log.txt", "best.json", "reals.png", "fakes_init.png")
MAX_WEIGHTS_BYTES = 5 * 1024 * 1024


def final_snapshot(run_dir: str | Path) -> Path:
    """The last network-snapshot-*.safetensors of a run folder."""
    snapshots = sorted(Path(run_dir).glob("network-snapshot-*.safetensors"))
    if not snapshots:
        raise FileNotFoundError(f"{run_dir}: no network-snapshot-*.safetensors; did the training finish?")
    return snapshots[-1]


def export_g_ema(snapshot: str | Path, dest: str | Path) -> Path:
    """Only G_ema of a training snapshot, as our safetensors checkpoint (refused above 5 MB)."""
    from medgan_core.checkpoint import load_network, save_checkpoint

    loaded = load_network(snapshot)
    dest = Path(dest)
    save_checkpoint(dest, {"G_ema": loaded["G_ema"]}, record={"exported_from": Path(snapshot).name})
    size = dest.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        dest.unlink()
        raise ValueError(f"{dest}: G_ema is {size / 2**20:.1f} MB, over the records' 5 MB; use a smaller network")
    return dest


def collect(
    run_dir: str | Path,
    dest: str | Path,
    weights: bool = False,
    all_grids: bool = True,
    work: str | Path | None = None,
) -> Path:
    """Copy a finished run's own files into `dest` (the final grid only unless `all_grids`).

    `work`: the record's scratch folder; in the text files it is written as `$MEDGAN_RECORD_WORK`, and the Python
    environment that ran it (a virtual environment's prefix, e.g. in a library's warning) as `$VIRTUAL_ENV`, so a
    record holds no path of the machine that made it."""
    run_dir, dest = Path(run_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    grids = sorted(run_dir.glob("fakes[0-9]*.png"))
    names = [p.name for p in (grids if all_grids else grids[-1:])] + list(KEEP)
    names += [p.name for p in sorted(run_dir.glob("metric-*.jsonl"))]
    for name in names:
        if not (run_dir / name).is_file():
            continue
        if work is not None and name.endswith((".txt", ".json", ".jsonl")):
            text = (run_dir / name).read_text(encoding="utf-8").replace(str(work), "$MEDGAN_RECORD_WORK")
            if sys.prefix != sys.base_prefix:  # a virtual environment (never a system prefix such as /usr)
                text = text.replace(f"{sys.prefix}{os.sep}", f"$VIRTUAL_ENV{os.sep}")
            (dest / name).write_text(text, encoding="utf-8")
        else:
            shutil.copy2(run_dir / name, dest / name)
    if weights:
        export_g_ema(final_snapshot(run_dir), dest / "G_ema.safetensors")
    return dest


def machine() -> str:
    """CPU model and core count of this machine, in words."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def write_readme(record: str | Path, command: str, commit: str, threads: int, seconds: float, note: str = "") -> Path:
    """README.md of a record: how it was made (command, commit, machine, threads, wall time) and its runs."""
    record = Path(record)
    runs = sorted(p.name for p in record.iterdir() if p.is_dir())
    lines = [
        f"# Record `{record.name.removesuffix('.tmp')}`",  # written before the .tmp folder is renamed
        "",
        "Made by `book/records/make_records.sh` from a clean clone of the commit below; never edited by hand.",
        "Regenerate it with the command (it replaces this folder).",
        "",
        f"- command: `{command}`",
        f"- commit: `{commit}`",
        f"- machine: {machine()} (shared with other work while this ran)",
        f"- threads: {threads} (OMP_NUM_THREADS, per training process)",
        f"- wall time: {seconds / 60:.1f} min",
        f"- runs: {', '.join(runs)}",
    ]
    if note:
        lines += ["", note]
    path = record / "README.md"
    path.write_text("\n".join(lines) + "\n")
    (record / "record.json").write_text(
        json.dumps(
            dict(command=command, commit=commit, threads=threads, seconds=round(seconds, 1), runs=runs, note=note)
        )
    )
    return path


def record_note(path: str | Path, show: bool = True) -> str:
    """A note box saying how the record holding `path` (a record or one of its runs) was made: command, commit,
    machine, threads, wall time, and what its runs are (the README's note), from its README.md / record.json."""
    from medgan_core.book.display import admonition

    path = Path(path)
    record = next((p for p in (path, *path.parents) if (p / "record.json").is_file()), None)
    if record is None:
        return admonition("Not a recorded run", f"{path} was trained in this session.", kind="note", show=show)
    info = json.loads((record / "record.json").read_text())
    readme = (record / "README.md").read_text()
    machine_line = next(
        (line[len("- machine: ") :] for line in readme.splitlines() if line.startswith("- machine:")), ""
    )
    body = (
        f"This chapter reads the recorded run `{record.name}` (no training happens while the book builds). It was "
        f"made with `{info['command']}` at commit `{info['commit'][:12]}` on {machine_line}, "
        f"{info['threads']} thread(s), in {info['seconds'] / 60:.0f} min. Set `run_training=True` to train anew."
    )
    if info.get("note"):
        body += " " + " ".join(info["note"].split())  # the README's paragraph on one line
    return admonition("A recorded run", body, kind="note", show=show)


def trained_seconds(run_dirs: list[str | Path]) -> float:
    """Seconds of training in the run folders so far, over every attempt of each (0 for a folder not begun).

    Each attempt (a start or an --auto-resume) appends to stats.jsonl with its own clock from 0, so the sum is the
    last Timing/total_sec before each reset plus the last one of the file.
    """
    total = 0.0
    for run_dir in run_dirs:
        path = Path(run_dir) / "stats.jsonl"
        lines = path.read_text().splitlines() if path.is_file() else []
        previous = 0.0
        for line in filter(None, lines):
            seconds = json.loads(line)["Timing/total_sec"]["mean"]
            if seconds < previous:  # a new attempt
                total += previous
            previous = seconds
        total += previous
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medgan_core.book.records")
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("collect")
    c.add_argument("run_dir")
    c.add_argument("dest")
    c.add_argument("--weights", action="store_true")
    c.add_argument("--final-grid-only", action="store_true")
    c.add_argument("--work", help="the record's scratch folder, written as $MEDGAN_RECORD_WORK in text files")
    r = sub.add_parser("readme")
    r.add_argument("record")
    r.add_argument("--command", required=True)
    r.add_argument("--commit", required=True)
    r.add_argument("--threads", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--note", default="")
    d = sub.add_parser("collapse", help="print where a run was in mode collapse (its metric-div128.jsonl)")
    d.add_argument("run_dir")
    t = sub.add_parser("trained-seconds", help="print the training time over every attempt of the run folders")
    t.add_argument("run_dirs", nargs="*")
    args = parser.parse_args(argv)
    if args.what == "trained-seconds":
        print(round(trained_seconds(args.run_dirs)))
    elif args.what == "collapse":
        from medgan_core.book.collapse import collapse_sentence

        print(collapse_sentence(args.run_dir))
    elif args.what == "collect":
        collect(args.run_dir, args.dest, weights=args.weights, all_grids=not args.final_grid_only, work=args.work)
    else:
        write_readme(args.record, args.command, args.commit, args.threads, args.seconds, args.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`--resume` checked before anything is written, and `--auto-resume` / `--resume auto`: preemption-safe runs.

A run restarted by a scheduler (a SLURM requeue after a time limit or preemption, a kill, a node failure) is
started again with the same command line plus `--auto-resume`. It then continues IN THE SAME run folder
(`--run-dir`) from its newest complete snapshot, with kimg, tick, augment p, the optimisers' moments and the RNG
state of that snapshot (see `snapshot.py`), and with the run's own configuration: unlike `--resume SNAPSHOT`,
which NVIDIA treats as a new run (ADA speed 100 kimg, no EMA ramp-up), a continuation changes nothing.

What the killed attempt wrote after that snapshot is dropped, so the run reads as one: stats.jsonl lines past
the snapshot's kimg, tick lines of log.txt past the snapshot's tick, metric entries of later snapshots, later
fakes<kimg>.png grids, half-written `.*.tmp` files; a snapshot that does not read back (it cannot, as they are
written atomically, unless the disk failed) is renamed `*.damaged`. The grid launcher's console.txt gets the
same cut (`truncate_log`).

A run that reached its `--kimg` writes `finished.json` ({kimg, tick, snapshot, time}); with `--auto-resume` a
finished run is never trained again. The first attempt, with no snapshot yet, starts as the command line says
(a transfer from `--resume PATH` included); `--resume auto` is `--auto-resume` without a transfer source.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickletools
import re
import time
from pathlib import Path

FINISHED = "finished.json"
_SNAPSHOT = re.compile(r"^network-snapshot-(\d+)(?:\.(\d+))?\.safetensors$")
_FAKES = re.compile(r"^fakes(\d+)\.png$")
_TICK_LINE = re.compile(r"^tick (\d+)\s")


class ResumeError(ValueError):
    """A --resume file or --auto-resume folder that cannot be used; the message names it and the fix."""


class RunFinished(Exception):  # noqa: N818 - a state, not an error: the run reached its --kimg before
    """Raised by `resolve` for a run that finished before (nothing to do); the message says where and when."""


# ---- checking a --resume file ----------------------------------------------------------------------------------
def check_resume_file(path: str | os.PathLike) -> str:
    """'snapshot' (our training snapshot: continue) or 'network' (a network to transfer from); raises ResumeError
    naming the file for a missing, unreadable, truncated or foreign file. Reads headers, never the weights."""
    from medgan_core.checkpoint import CheckpointError
    from medgan_core.checkpoint.native import is_medgan_checkpoint, read_header

    path = Path(path)
    fix = (
        "pass a run's network-snapshot-*.safetensors (to continue it), a network .pkl or .safetensors to "
        "transfer from, or --resume auto with --run-dir (to continue that run folder)"
    )
    if path.is_dir():
        raise ResumeError(f"--resume {path}: a folder, not a file; {fix}")
    if not path.is_file():
        raise ResumeError(f"--resume {path}: no such file; {fix}")
    try:
        if is_medgan_checkpoint(path):
            header = read_header(path)  # safetensors checks that the data covers the whole file
            return "snapshot" if "training_state" in header.get("record", {}) else "network"
        with open(path, "rb") as f:
            if f.read(1) != b"\x80":
                raise ResumeError(f"--resume {path}: neither a medgan checkpoint nor a network pickle; {fix}")
            f.seek(0)
            _check_pickle_complete(f, path)
    except CheckpointError as exc:
        raise ResumeError(f"--resume {exc}; the file is damaged or truncated (copy it again); {fix}") from exc
    except OSError as exc:
        raise ResumeError(f"--resume {path}: cannot be read ({exc.strerror or exc})") from exc
    return "network"


def _check_pickle_complete(f, path: Path) -> None:
    """Walk the pickle's opcodes to its STOP without building any object (a truncated file ends early)."""
    try:
        for opcode, _arg, _pos in pickletools.genops(f):
            if opcode.name == "STOP":
                return
    except (ValueError, EOFError) as exc:
        raise ResumeError(f"--resume {path}: a truncated or damaged pickle ({exc}); copy the file again") from exc
    raise ResumeError(f"--resume {path}: a truncated pickle (no STOP opcode); copy the file again")


# ---- the run folder -----------------------------------------------------------------------------------------------
def snapshot_nimg(name: str) -> int | None:
    """Images shown at a snapshot from its file name (network-snapshot-<kimg>[.<rest>].safetensors), else None."""
    match = _SNAPSHOT.match(name)
    return None if match is None else int(match.group(1)) * 1000 + int(match.group(2) or 0)


def newest_snapshot(run_dir: str | os.PathLike) -> tuple[Path | None, dict | None, list[Path]]:
    """(path, training state, damaged newer files) of the newest snapshot of `run_dir` whose header reads back
    and carries a training state; (None, None, damaged) when there is none."""
    from medgan_core.checkpoint import CheckpointError
    from medgan_core.checkpoint.native import read_header

    run_dir = Path(run_dir)
    found = [(snapshot_nimg(p.name), p) for p in run_dir.glob("network-snapshot-*.safetensors")]
    found = [(nimg, p) for nimg, p in found if nimg is not None]
    damaged = []
    for _, path in sorted(found, reverse=True):
        try:
            state = read_header(path).get("record", {}).get("training_state")
        except (CheckpointError, OSError, ValueError):
            state = None
        if state is not None:
            return path, state, damaged
        damaged.append(path)
    return None, None, damaged


def finished_record(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / FINISHED
    return json.loads(path.read_text()) if path.is_file() else None


def mark_finished(run_dir: str | os.PathLike, kimg: float, tick: int) -> Path:
    """Write finished.json (atomically): the run reached its --kimg and must never be trained again."""
    from medgan_core.utils.io import atomic_write

    run_dir = Path(run_dir)
    snapshot, _, _ = newest_snapshot(run_dir)
    record = dict(kimg=kimg, tick=tick, snapshot=snapshot.name if snapshot else None, time=time.time())
    with atomic_write(run_dir / FINISHED, "wt") as f:
        json.dump(record, f, indent=2)
    return run_dir / FINISHED


def prune_after(run_dir: str | os.PathLike, cur_nimg: int, cur_tick: int, damaged: list[Path] = ()) -> dict[str, int]:
    """Drop what a killed attempt wrote after `cur_nimg` images, tick `cur_tick` (see the module's docstring);
    returns counts of what went."""
    from medgan_core.utils.io import atomic_write

    run_dir = Path(run_dir)
    counts = dict(stats_lines=0, log_lines=0, metric_lines=0, grids=0, temporary=0, damaged=len(damaged))
    counts["log_lines"] = truncate_log(run_dir / "log.txt", cur_tick)
    for path in damaged:
        path.rename(path.with_name(path.name + ".damaged"))
    stats = run_dir / "stats.jsonl"
    if stats.is_file():
        lines = stats.read_text().splitlines()
        keep = [line for line in lines if line.strip() and _stats_nimg(line) <= cur_nimg]
        counts["stats_lines"] = len(lines) - len(keep)
        if counts["stats_lines"]:
            with atomic_write(stats, "wt") as f:
                f.write("".join(line + "\n" for line in keep))
    for metric_file in run_dir.glob("metric-*.jsonl"):
        lines = metric_file.read_text().splitlines()
        keep = [line for line in lines if line.strip() and _metric_nimg(line) <= cur_nimg]
        if len(keep) != len(lines):
            counts["metric_lines"] += len(lines) - len(keep)
            with atomic_write(metric_file, "wt") as f:
                f.write("".join(line + "\n" for line in keep))
    for path in run_dir.iterdir():
        match = _FAKES.match(path.name)
        if match and int(match.group(1)) > cur_nimg // 1000:
            path.unlink()
            counts["grids"] += 1
        elif path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file():
            path.unlink()
            counts["temporary"] += 1
    return counts


def _stats_nimg(line: str) -> int:
    return round(json.loads(line)["Progress/kimg"]["mean"] * 1000)


def _metric_nimg(line: str) -> int:
    return snapshot_nimg(json.loads(line).get("snapshot_pkl") or "") or 0


def truncate_log(path: str | os.PathLike, cur_tick: int) -> int:
    """Cut a console log (log.txt, the launcher's console.txt) in place before its first tick line past
    `cur_tick`; returns how many lines were dropped. In place: a file another process appends to stays the same."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "r+", encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
        cut = next(
            (i for i, line in enumerate(lines) if (m := _TICK_LINE.match(line)) and int(m.group(1)) > cur_tick),
            None,
        )
        if cut is None:
            return 0
        f.seek(0)
        f.write("".join(lines[:cut]))
        f.truncate()
    return len(lines) - cut


# ---- the trainer's entry point ------------------------------------------------------------------------------------
def resolve(opts, log=print):
    """Check --resume and, with --auto-resume (or --resume auto), decide how this attempt starts.

    Returns the options to train with: `continue_from` set to the snapshot to continue from (None for a fresh
    start), `resume` the transfer source or None. Raises ResumeError (bad file or folder) before any run folder is
    made, and RunFinished for a run that already reached its --kimg. Only rank 0 (or a process outside torchrun)
    changes files; a dry run changes none.
    """
    if opts.resume == "auto":
        opts = dataclasses.replace(opts, resume=None, auto_resume=True)
    if opts.resume is not None:
        kind = check_resume_file(opts.resume)
        if kind == "snapshot" and opts.auto_resume:
            raise ResumeError(
                f"--resume {opts.resume} with --auto-resume: give --resume only a network to transfer from "
                "(the run continues from its own snapshots by itself)"
            )
    if not opts.auto_resume:
        return opts
    if not opts.run_dir:
        raise ResumeError("--auto-resume (--resume auto) needs --run-dir: the run folder to continue")
    run_dir = Path(opts.run_dir)
    writer = int(os.environ.get("RANK", "0")) == 0 and not opts.dry_run
    finished = finished_record(run_dir)
    if finished is not None:
        raise RunFinished(f"{run_dir}: finished at kimg {finished['kimg']:g} ({FINISHED}); nothing to do")
    snapshot, state, damaged = newest_snapshot(run_dir) if run_dir.is_dir() else (None, None, [])
    if snapshot is not None and state["cur_nimg"] >= round(opts.kimg * 1000):
        if writer:
            mark_finished(run_dir, state["cur_nimg"] / 1000, state["cur_tick"])
        raise RunFinished(f"{run_dir}: {snapshot.name} is at --kimg {opts.kimg:g} already; nothing to do")
    if run_dir.is_dir() and writer:
        counts = prune_after(run_dir, state["cur_nimg"] if state else 0, state["cur_tick"] if state else -1, damaged)
        dropped = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v)
        if dropped:
            log(f"Auto-resume: dropped what the last attempt wrote after the snapshot: {dropped}")
    if snapshot is None:
        log(f"Auto-resume: no snapshot in {run_dir} yet; starting the run")
        return opts
    log(f"Auto-resume: continuing {run_dir} from {snapshot.name}")
    return dataclasses.replace(opts, continue_from=str(snapshot))

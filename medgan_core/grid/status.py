"""`medgan grid status`: one row per run of a grid, read from the run folders (nothing is asked of a scheduler).

- run: from the grid's manifest (grid.json, so pending runs show too), else every run folder below the root;
- state: finished (finished.json); running, failed, preempted or stopped (grid-job.json; a pid on this host is
  checked for life); started (a run folder without a grid job); pending (no folder yet);
- kimg and last tick: the last stats.jsonl line's Progress/kimg and its timestamp (UTC);
- best: best.json, the first metric's best value and the kimg it was reached at.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


def _last_stats_line(run_dir: Path) -> dict | None:
    path = run_dir / "stats.jsonl"
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(f.tell() - 65536, 0))
        lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:  # a line being written
            continue
    return None


def _alive(state: dict) -> bool:
    if state.get("host") != socket.gethostname():
        return True  # another node: trust the record (its ticks say whether it moves)
    return pid_alive(state.get("pid"))


def pid_alive(pid) -> bool:
    """Whether process `pid` of this host still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        pid = int(pid)
        os.kill(pid, 0)
    except (OSError, TypeError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (macOS): the signal's answer


def run_state(run_dir: Path) -> str:
    from medgan_core.grid.job import read_state

    if (run_dir / "finished.json").is_file():
        return "finished"
    if not run_dir.is_dir():
        return "pending"
    job = read_state(run_dir)
    if job is None:
        return "started" if (run_dir / "training_options.json").is_file() else "pending"
    if job.get("state") == "running":
        return "running" if _alive(job) else "failed"
    return str(job.get("state"))


def run_row(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    stats = _last_stats_line(run_dir)
    best_path = run_dir / "best.json"
    best = json.loads(best_path.read_text()) if best_path.is_file() else None
    return dict(
        run=run_dir.name,
        state=run_state(run_dir),
        kimg=round(stats["Progress/kimg"]["mean"], 3) if stats else None,
        last_tick=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stats["timestamp"])) if stats else None,
        best=dict(metric=best["metric"], value=best["value"], kimg=best["kimg"]) if best else None,
    )


def grid_status(runs_root: str | Path) -> list[dict]:
    """One row per run (see the module's docstring), in the manifest's order or by name."""
    from medgan_core.grid.launcher import MANIFEST

    root = Path(runs_root)
    manifest = root / MANIFEST
    if manifest.is_file():
        names = [run["name"] for run in json.loads(manifest.read_text())["runs"]]
    elif root.is_dir():
        names = sorted(p.name for p in root.iterdir() if (p / "training_options.json").is_file())
    else:
        names = []
    return [run_row(root / name) for name in names]


def status_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table, with a count per state below it."""
    cells = [["run", "state", "kimg", "last tick (UTC)", "best"]]
    for row in rows:
        best = row["best"]
        cells.append([
            row["run"],
            row["state"],
            "-" if row["kimg"] is None else f"{row['kimg']:g}",
            row["last_tick"] or "-",
            f"{best['metric']} {best['value']:.4g} at kimg {best['kimg']:g}" if best else "-",
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    lines.append(f"{len(rows)} runs: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return "\n".join(lines)

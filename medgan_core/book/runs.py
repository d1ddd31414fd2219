"""Reading the run directories the trainer writes (`medgan train`): statistics, metrics, snapshots, grids.

A run directory holds (see medgan_core.training.loop):
- training_options.json: the training loop's keyword arguments in NVIDIA's layout (G_kwargs, loss_kwargs,
  training_set_kwargs, ...), the command line as given under "cli_options";
- stats.jsonl: one JSON object per tick, each entry {"num", "mean", "std"} (NVIDIA's layout) plus "timestamp";
- metric-<name>.jsonl: one JSON object per evaluation ({"results": {name: value}, "snapshot_pkl", ...});
- best.json: the best value of the first metric and its snapshot (only when a metric ran);
- network-snapshot-<kimg>.safetensors, reals.png, fakes_init.png, fakes<kimg>.png.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

_SNAPSHOT = re.compile(r"^network-snapshot-([0-9.]+)\.(safetensors|pkl)$")
_FAKES = re.compile(r"^fakes(\d+)\.png$")


@dataclass(frozen=True)
class RunDirectory:
    """One training run's folder."""

    path: Path

    @classmethod
    def open(cls, path) -> RunDirectory:
        path = Path(path)
        if not (path / "training_options.json").is_file():
            raise FileNotFoundError(
                f"{path}: not a run directory (no training_options.json); pass a `medgan train` run folder"
            )
        return cls(path)

    @property
    def name(self) -> str:
        return self.path.name

    def options(self) -> dict:
        return json.loads((self.path / "training_options.json").read_text())["cli_options"]

    def config(self) -> dict:
        return json.loads((self.path / "training_options.json").read_text())

    def stats(self) -> pd.DataFrame:
        """One row per tick: columns '<name>' (mean) and '<name>/std' for every statistic; index kimg."""
        path = self.path / "stats.jsonl"
        rows = []
        if path.is_file():
            for line in path.read_text().splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                row = {}
                for name, value in entry.items():
                    if isinstance(value, dict) and "mean" in value:
                        row[name] = value["mean"]
                        row[f"{name}/std"] = value.get("std", np.nan)
                rows.append(row)
        frame = pd.DataFrame(rows)
        if "Progress/kimg" in frame:
            frame = frame.set_index("Progress/kimg")
            frame.index.name = "kimg"
        return frame

    def metrics(self) -> pd.DataFrame:
        """Every metric evaluation: columns metric, value, snapshot, kimg (from the snapshot's name). A metric that
        also reports a value over the features that vary over the reals (frd256's `frd256_varying`) gives that as a
        metric of its own."""
        rows = []
        for path in sorted(self.path.glob("metric-*.jsonl")):
            for line in path.read_text().splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                metric = entry["metric"]
                value = entry["results"].get(metric, next(iter(entry["results"].values()), np.nan))
                snapshot = entry.get("snapshot_pkl")
                match = _SNAPSHOT.match(snapshot or "")
                kimg = float(match.group(1)) if match else np.nan
                rows.append(dict(metric=metric, value=float(value), snapshot=snapshot, kimg=kimg))
                if f"{metric}_varying" in entry["results"]:
                    varying = float(entry["results"][f"{metric}_varying"])
                    rows.append(dict(metric=f"{metric}_varying", value=varying, snapshot=snapshot, kimg=kimg))
        return pd.DataFrame(rows, columns=["metric", "value", "snapshot", "kimg"])

    def best(self) -> dict | None:
        """best.json ({"metric", "value", "kimg", "snapshot"}) or None when no metric ran."""
        path = self.path / "best.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def snapshots(self) -> list[Path]:
        """Snapshot files sorted by kimg."""
        found = [(float(m.group(1)), p) for p in self.path.iterdir() if (m := _SNAPSHOT.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest_snapshot(self) -> Path:
        snapshots = self.snapshots()
        if not snapshots:
            raise FileNotFoundError(f"{self.path}: no network snapshot yet; train longer or check the run's log")
        return snapshots[-1]

    def generator_file(self) -> Path:
        """The run's final generator: G_ema.safetensors in a recorded run (book/records), else the latest snapshot."""
        recorded = self.path / "G_ema.safetensors"
        return recorded if recorded.is_file() else self.latest_snapshot()

    def final_metric(self, metric: str) -> float:
        """The last value of `metric` this run recorded (NaN when it has none)."""
        table = self.metrics()
        values = table.loc[table["metric"] == metric, "value"]
        return float(values.iloc[-1]) if len(values) else float("nan")

    def best_snapshot(self) -> Path:
        """The snapshot at the best metric value, or the latest snapshot when no metric ran."""
        best = self.best()
        if best is not None and (self.path / best["snapshot"]).is_file():
            return self.path / best["snapshot"]
        return self.latest_snapshot()

    def grid(self, which: str = "latest") -> np.ndarray:
        """An image grid the trainer saved: 'reals', 'init' (before training) or 'latest' (last fakes)."""
        if which == "reals":
            name = "reals.png"
        elif which == "init":
            name = "fakes_init.png"
        else:
            fakes = sorted((int(m.group(1)), p.name) for p in self.path.iterdir() if (m := _FAKES.match(p.name)))
            if not fakes:
                raise FileNotFoundError(f"{self.path}: no fakes<kimg>.png grid yet")
            name = fakes[-1][1]
        with Image.open(self.path / name) as image:
            return np.asarray(image)


def find_runs(root, pattern: str = "*", with_snapshot: bool = True) -> list[RunDirectory]:
    """Run directories directly below `root` whose names match `pattern`, sorted by name; with `with_snapshot`
    only those holding a snapshot (recorded runs keep none: pass False to read their statistics)."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [RunDirectory(p) for p in sorted(root.glob(pattern)) if (p / "training_options.json").is_file()]
    return [run for run in runs if run.snapshots() or not with_snapshot]

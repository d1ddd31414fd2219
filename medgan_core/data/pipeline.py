"""Run a recipe over a source folder: slices -> anonymous PNGs, an index, a failure summary.

Outputs in `out/`: ``<source hash>[_f<frame>]_s<slice>.png`` (8-bit, no metadata) and ``index.csv`` with the
columns source_hash, frame, slice, output, recipe. Every file is written to a temporary name and renamed when
complete. A rerun skips sources whose rows are in index.csv with every PNG present. Sources are read in order
by the calling thread while `workers` threads encode and write PNGs (zlib and numpy release the GIL, so the
threads run in parallel); results are gathered in source order, so the outputs and the index do not depend on
the number of workers.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from medgan_core.data.recipes import Recipe, WorkItem, output_name
from medgan_core.utils.io import atomic_write, save_png

logger = logging.getLogger("medgan_core.data")

INDEX_NAME = "index.csv"
INDEX_COLUMNS = ("source_hash", "frame", "slice", "output", "recipe")
CHECKPOINT_EVERY_S = 30.0


@dataclasses.dataclass
class PrepReport:
    """What a run made: counts, every failure (relative path, reason), and how it compares with the paper."""

    recipe: str
    sources: int = 0
    made: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    expected: int | None = None
    expected_label: str = "the paper's count"
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.made + self.skipped

    @property
    def matches_expected(self) -> bool | None:
        return None if self.expected is None else self.total == self.expected

    def summary(self) -> str:
        lines = [
            f"{self.recipe}: {self.total} slices from {self.sources} sources "
            f"({self.made} made, {self.skipped} already done) in {self.seconds:.1f} s"
        ]
        if self.expected is not None:
            verdict = "matches" if self.matches_expected else "does NOT match"
            lines.append(f"manifest expects {self.expected:,} ({self.expected_label}): {verdict}")
        if self.failures:
            lines.append(f"{len(self.failures)} source(s) failed:")
            lines += [f"  {path}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


def read_index(out: Path) -> list[dict]:
    path = out / INDEX_NAME
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and tuple(rows[0].keys()) != INDEX_COLUMNS:
        raise ValueError(f"{path}: unexpected columns {tuple(rows[0].keys())}; move it away or use a new --out")
    return rows


def write_index(out: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(out / INDEX_NAME, "w") as f:
        f.write(buffer.getvalue())


def _finished_sources(out: Path, recipe: str) -> dict[str, list[dict]]:
    """Rows of index.csv grouped by source hash, kept only where every listed PNG exists (same recipe)."""
    grouped: dict[str, list[dict]] = {}
    for row in read_index(out):
        grouped.setdefault(row["source_hash"], []).append(row)
    return {
        key: rows
        for key, rows in grouped.items()
        if all(r["recipe"] == recipe and (out / r["output"]).is_file() for r in rows)
    }


def _failure_reason(exc: BaseException, root: Path | None = None) -> str:
    """One line: exception type and first message line, paths under `root` shortened to relative ones."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if root is not None:
        text = text.replace(f"{root}/", "")
    return f"{type(exc).__name__}: {text}"[:300]


def _remove_quietly(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def run_prep(
    recipe: Recipe,
    src: str | Path | None,
    out: str | Path,
    workers: int = 1,
    limit: int | None = None,
    progress: bool = True,
) -> PrepReport:
    """Run `recipe` over `src`, writing PNGs and index.csv to `out`. `limit` keeps the first N sources.

    Failures (unreadable files, NaNs, wrong dimensionality, missing masks, ...) are collected per source; the
    other sources go on. A failed source leaves none of its PNGs behind.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = recipe.discover(src)
    src_root = Path(src) if src is not None else None
    if limit is not None:
        items = items[: max(0, int(limit))]
    hashes: dict[str, str] = {}
    for item in items:
        other = hashes.setdefault(item.source_hash, item.relative)
        if other != item.relative:
            raise ValueError(f"source hash collision between {other} and {item.relative}; rename one of them")

    report = PrepReport(recipe.name, len(items), expected=recipe.expected_count, expected_label=recipe.expected_label)
    finished = _finished_sources(out, recipe.name)
    rows_by_item: list[list[dict] | None] = [None] * len(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medgan-png") if workers > 1 else None
    pending: list[tuple[int, WorkItem, list[tuple[Path, Future | None]], list[dict]]] = []
    last_checkpoint = time.monotonic()
    queued = 0  # slices handed to the writers so far (progress display)

    def settle(entry) -> None:
        index, item, writes, rows = entry
        error = None
        for _path, future in writes:
            try:
                if future is not None:
                    future.result()
            except Exception as exc:  # disk full, permissions: the source fails, the run goes on
                error = error or exc
        if error is not None:
            _remove_quietly([path for path, _ in writes])
            report.failures.append((item.relative, _failure_reason(error, src_root)))
            logger.warning("failed %s (%s): %s", item.source_hash, item.relative, _failure_reason(error, src_root))
            return
        rows_by_item[index] = rows
        report.made += len(rows)

    def checkpoint() -> None:
        write_index(out, [row for rows in rows_by_item if rows for row in rows])

    bar = tqdm(total=len(items), desc=f"prep {recipe.name}", unit="scan", disable=not progress)
    try:
        for index, item in enumerate(items):
            key = item.source_hash
            if key in finished:
                rows_by_item[index] = finished[key]
                report.skipped += len(finished[key])
                bar.update(1)
                continue
            try:
                slices = recipe.process(item)
            except Exception as exc:  # bad input: listed in the summary, the run goes on
                report.failures.append((item.relative, _failure_reason(exc, src_root)))
                logger.warning("failed %s (%s): %s", key, item.relative, _failure_reason(exc, src_root))
                bar.update(1)
                continue
            rows, writes = [], []
            for frame, slice_index, render in slices:
                name = output_name(key, frame, slice_index)
                path = out / name
                if pool is not None:
                    writes.append((path, pool.submit(_write, render, path)))
                else:
                    try:
                        _write(render, path)
                        writes.append((path, None))
                    except Exception as exc:
                        writes.append((path, _failed_future(exc)))
                        break
                frame_text = "" if frame is None else str(frame)
                rows.append(dict(zip(INDEX_COLUMNS, (key, frame_text, slice_index, name, recipe.name))))
            pending.append((index, item, writes, rows))
            queued += len(rows)
            while len(pending) > 1:  # keep one source in flight while the next is read
                settle(pending.pop(0))
            bar.update(1)
            bar.set_postfix(slices=queued + report.skipped)
            if time.monotonic() - last_checkpoint > CHECKPOINT_EVERY_S:
                while pending:
                    settle(pending.pop(0))
                checkpoint()
                last_checkpoint = time.monotonic()
        while pending:
            settle(pending.pop(0))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        checkpoint()
    report.seconds = time.perf_counter() - started
    return report


def _write(render: Callable[[], object], path: Path) -> None:
    save_png(render(), path)


def _failed_future(exc: BaseException) -> Future:
    future: Future = Future()
    future.set_exception(exc)
    return future

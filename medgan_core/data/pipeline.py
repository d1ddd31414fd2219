"""Run a recipe over a source folder: slices -> anonymous PNGs, an index, a summary of failures and notes.

Outputs in `out/`: ``<source id>[_f<frame>]_s<slice>.png`` (8-bit, no metadata) and ``index.csv`` with the
columns source_id, frame, slice, output, recipe, input_digest, png_sha256. The source id is keyed (see
`medgan_core.data.naming`): nothing under `out/` names a source path or lets anyone test a guessed one.

After a run `out/` holds exactly the slices of this run's sources, each listed in index.csv:

- a source is reused only when its input digest (a keyed hash of its files, its mask's files and the recipe's
  settings) is unchanged and each of its PNGs still has the SHA-256 recorded in the index; otherwise it is made
  anew (a fixed mask, a changed manifest, a truncated PNG);
- outputs of sources no longer produced (removed from --src, cut by --limit, failed now) are deleted, as are
  temporaries left by a killed run;
- one folder holds one recipe: a second recipe is refused (`medgan dataset` packs the whole folder, and two
  recipes differ in modality and size).

The summary names a failed or odd source by its id (``show_paths`` names its path, for the user's own terminal);
odd but usable input (a README.txt in a DICOM folder, a mask without scan or without liver) is a note, not a
failure.

Every file is written to a temporary name and renamed when complete. Sources are read in order by the calling
thread while `workers` threads encode and write the previous source's PNGs (zlib and numpy release the GIL);
results are gathered in source order, so outputs and index do not depend on the number of workers.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import logging
import re
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from medgan_core.data import naming
from medgan_core.data.readers import DataWarning
from medgan_core.data.recipes import Recipe, WorkItem, output_name
from medgan_core.utils.io import atomic_write, png_bytes

logger = logging.getLogger("medgan_core.data")

INDEX_NAME = "index.csv"
INDEX_COLUMNS = ("source_id", "frame", "slice", "output", "recipe", "input_digest", "png_sha256")
LEGACY_COLUMNS = ("source_hash", "frame", "slice", "output", "recipe")  # before keyed names: never reused
PREP_FORMAT = "2"  # part of every input digest: bump when a code change alters the PNGs of unchanged inputs
OUTPUT_PATTERN = re.compile(r"[0-9a-f]{8,16}(_f\d+)?_s\d{4,}\.png")
TEMPORARY_PATTERN = re.compile(r"\..+\.tmp")  # utils.io.atomic_write's temporaries
LOCK_NAME = ".medgan-prep.lock"
CHECKPOINT_EVERY_S = 30.0


@dataclasses.dataclass(frozen=True)
class SourceNote:
    """A failure or a note about one source: `text` names paths relative to --src, `anonymous` does not."""

    source_id: str
    relative: str
    text: str
    anonymous: str

    def shown(self, show_paths: bool) -> str:
        if show_paths:
            return self.text if self.relative in self.text else f"{self.relative}: {self.text}"
        return f"{self.source_id}: {self.anonymous}"


@dataclasses.dataclass
class PrepReport:
    """What a run made, reused and removed, every failure and note, and how it compares with the manifest."""

    recipe: str
    sources: int = 0
    made: int = 0
    reused: int = 0
    dropped: int = 0  # slices the selection left out, in the sources read by this run
    removed: int = 0  # stale outputs deleted
    failures: list[SourceNote] = dataclasses.field(default_factory=list)
    notes: list[SourceNote] = dataclasses.field(default_factory=list)
    expected: int | None = None
    expected_label: str = "the paper's count"
    expected_dropped: int | None = None
    key_message: str | None = None
    show_paths: bool = False
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.made + self.reused

    @property
    def matches_expected(self) -> bool | None:
        return None if self.expected is None else self.total == self.expected

    def summary(self) -> str:
        lines = [self.key_message] if self.key_message else []
        dropped = f", {self.dropped} dropped by the slice selection" if self.dropped else ""
        lines.append(
            f"{self.recipe}: {self.total} slices from {self.sources} sources ({self.made} made, {self.reused} "
            f"reused{dropped}, {self.removed} stale removed) in {self.seconds:.1f} s"
        )
        if self.expected is not None:
            verdict = "matches" if self.matches_expected else "does NOT match"
            lines.append(f"manifest expects {self.expected:,} ({self.expected_label}): {verdict}")
        if self.expected_dropped is not None and self.made == self.total:  # every source read: dropped is whole
            verdict = "matches" if self.dropped == self.expected_dropped else "does NOT match"
            lines.append(f"manifest expects {self.expected_dropped:,} dropped: {verdict}")
        for title, entries in ((f"{len(self.notes)} note(s):", self.notes), (None, self.failures)):
            title = title or f"{len(self.failures)} source(s) failed:"
            lines += [title] + [f"  {entry.shown(self.show_paths)}" for entry in entries] if entries else []
        if (self.notes or self.failures) and not self.show_paths:
            lines.append(
                "(sources are named by their anonymous id; rerun with --show-paths to see their paths, which may "
                "hold patient names: keep that output private)"
            )
        return "\n".join(lines)


def read_index(out: Path) -> list[dict]:
    """The rows of out/index.csv (a pre-keyed-names index reads with its own columns; its rows are never reused)."""
    path = Path(out) / INDEX_NAME
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    if tuple(reader.fieldnames or ()) not in (INDEX_COLUMNS, LEGACY_COLUMNS):
        raise ValueError(f"{path}: unexpected columns {reader.fieldnames}; move it away or use a new --out")
    return rows


def write_index(out: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(out / INDEX_NAME, "w") as f:
        f.write(buffer.getvalue())


@dataclasses.dataclass(frozen=True)
class _Source:
    """A work item with its keyed id and what an earlier run listed for it in index.csv."""

    item: WorkItem
    source_id: str
    previous_rows: tuple[dict, ...] = ()


def run_prep(
    recipe: Recipe,
    src: str | Path | None,
    out: str | Path,
    workers: int = 1,
    limit: int | None = None,
    progress: bool = True,
    key_file: str | Path | None = None,
    show_paths: bool = False,
) -> PrepReport:
    """Run `recipe` over `src`, writing PNGs and index.csv to `out`. `limit` keeps the first N sources.

    key_file: the naming key (see `medgan_core.data.naming`; default: $MEDGAN_KEY_FILE, then the user's config
    folder). show_paths: name sources by their path in the summary instead of their anonymous id.
    Failures (unreadable files, NaNs, wrong dimensionality, missing masks, ...) are collected per source; the
    other sources go on. A failed source leaves none of its PNGs behind.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = naming.resolve_key(key_file, out, public_sources=recipe.inputs.get("kind") == "bundled")
    report = PrepReport(
        recipe.name,
        expected=recipe.expected_count,
        expected_label=recipe.expected_label,
        expected_dropped=recipe.expected_dropped,
        key_message=key.message(),
        show_paths=show_paths,
    )
    with _only_run_in(out):
        _remove_temporaries(out)
        previous = read_index(out)
        _refuse_other_recipes(previous, recipe.name, out)
        sources = _list_sources(recipe, src, limit, key, previous, report)
        report.removed = _remove_outputs_of_other_sources(out, previous, sources)
        _make_slices(recipe, sources, key, src, out, workers, report, progress)
    report.seconds = time.perf_counter() - started
    return report


# -- before the work: one run per folder, no leftovers ----------------------------------------------------------


@contextlib.contextmanager
def _only_run_in(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on `out` (released by the OS if the process dies), so cleaning up is safe."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one run per folder is then up to the user
        yield
        return
    lock_path = out / LOCK_NAME
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{out}: another medgan prep is writing to this folder; wait for it to finish") from None
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)


def _remove_temporaries(out: Path) -> None:
    """Temporaries of a run that was killed (nothing else writes here while we hold the lock)."""
    for path in out.iterdir():
        if TEMPORARY_PATTERN.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)


def _refuse_other_recipes(previous: list[dict], recipe: str, out: Path) -> None:
    others = sorted({row["recipe"] for row in previous} - {recipe})
    if others:
        raise ValueError(
            f"{out} holds the slices of recipe {', '.join(others)} (see its {INDEX_NAME}); one folder holds one "
            f"recipe (medgan dataset packs the whole folder): give {recipe} its own --out"
        )


def _list_sources(recipe: Recipe, src, limit, key: naming.NamingKey, previous, report: PrepReport) -> list[_Source]:
    """The recipe's work items (first `limit`) with keyed ids and earlier index rows; discovery notes -> `report`."""
    src_root = Path(src) if src is not None else None
    with _data_warnings() as caught:
        items = recipe.discover(src)
    for message, path in caught:
        relative = _relative_to(path, src_root)
        note = _note(naming.source_id(key, relative), relative, message, src_root, [(relative, "<file>")])
        report.notes.append(note)
    items = items if limit is None else items[: max(0, int(limit))]
    rows_of: dict[str, list[dict]] = {}
    for row in previous:
        rows_of.setdefault(row.get("source_id", ""), []).append(row)
    sources, seen = [], {}
    for item in items:
        source_id = naming.source_id(key, item.relative)
        if seen.setdefault(source_id, item.relative) != item.relative:
            raise ValueError(f"two sources share the name {source_id}: {seen[source_id]} and {item.relative}")
        sources.append(_Source(item, source_id, tuple(rows_of.get(source_id, ()))))
    report.sources = len(sources)
    return sources


def _remove_outputs_of_other_sources(out: Path, previous: list[dict], sources: list[_Source]) -> int:
    """Delete the outputs of sources this run does not have (removed, cut by --limit, legacy names) and stray
    prep-named PNGs that no index lists."""
    kept = {row["output"] for source in sources for row in source.previous_rows}
    listed = {row["output"] for row in previous}
    stray = {p.name for p in out.iterdir() if OUTPUT_PATTERN.fullmatch(p.name)}
    return _remove(out, sorted((listed | stray) - kept))


def _remove(out: Path, names) -> int:
    removed = 0
    for name in names:
        if (out / name).is_file():
            (out / name).unlink()
            removed += 1
    return removed


# -- the work: check each source in order, reuse it or read it; its PNGs are written on the writer threads -------


def _make_slices(recipe, sources, key, src, out: Path, workers: int, report: PrepReport, progress: bool) -> None:
    """Each source in order on this thread: reuse its slices when unchanged, else read and plan it while `workers`
    threads write the previous one's PNGs. index.csv stays current (every CHECKPOINT_EVERY_S seconds and at the
    end, also when interrupted: it then keeps the earlier rows of the sources not reached)."""
    done: dict[int, list[dict]] = {}  # position in `sources` -> its index rows, made or reused
    in_flight: list[_Writing] = []
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medgan-png")
    bar = tqdm(total=len(sources), desc=f"prep {recipe.name}", unit="scan", disable=not progress)
    last_checkpoint, reached = time.monotonic(), -1  # reached: position of the source being handled
    try:
        for reached, source in enumerate(sources):
            digest = _input_digest(recipe, key, source.item)
            if _unchanged(source, digest, out):
                done[reached] = list(source.previous_rows)
                report.reused += len(source.previous_rows)
            else:
                report.removed += _remove(out, [row["output"] for row in source.previous_rows])
                slices = _plan(recipe, source, src, report)
                if slices is not None:
                    in_flight.append(_Writing.start(pool, reached, source, digest, slices, out, recipe.name))
            while len(in_flight) > 1:  # one source in flight while the next one is read
                _settle(in_flight.pop(0), done, report)
            bar.update(1)
            if time.monotonic() - last_checkpoint > CHECKPOINT_EVERY_S:
                while in_flight:
                    _settle(in_flight.pop(0), done, report)
                write_index(out, _index_rows(sources, done, reached))
                last_checkpoint = time.monotonic()
        while in_flight:
            _settle(in_flight.pop(0), done, report)
        reached = len(sources)
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)  # interrupted: queued writes are cancelled
        while in_flight:
            _settle(in_flight.pop(0), done, report)
        write_index(out, _index_rows(sources, done, reached))


def _input_digest(recipe: Recipe, key: naming.NamingKey, item: WorkItem) -> str:
    """Keyed digest of the item's files, its mask's files and the recipe's settings ('' when unreadable)."""
    settings = f"{PREP_FORMAT}\n{recipe.settings_text(item)}"
    try:
        return naming.input_digest(key, settings, recipe.input_files(item))
    except OSError:  # never reused; reading it fails with the file's name
        return ""


def _unchanged(source: _Source, digest: str, out: Path) -> bool:
    """An earlier run made this source from the same inputs and settings, and each of its PNGs is intact."""
    return bool(source.previous_rows) and all(
        row["input_digest"] == digest
        and (out / row["output"]).is_file()
        and hashlib.sha256((out / row["output"]).read_bytes()).hexdigest() == row["png_sha256"]
        for row in source.previous_rows
    )


def _index_rows(sources: list[_Source], done: dict[int, list[dict]], reached: int) -> list[dict]:
    """Rows in source order: those done, then the earlier rows of sources not reached yet (still on disk)."""
    rows = [row for _, source_rows in sorted(done.items()) for row in source_rows]
    return rows + [row for source in sources[reached + 1 :] for row in source.previous_rows]


def _plan(recipe: Recipe, source: _Source, src, report: PrepReport) -> list | None:
    """The source's planned slices, or None when it fails; its failure and notes go to `report`."""
    item, src_root = source.item, Path(src) if src is not None else None
    named = [(item.path, "<source>")] + ([(item.mask, "<mask>")] if item.mask is not None else [])
    named += [(path, "<source file>") for _label, path in recipe.input_files(item)]  # e.g. an .mhd's .raw file
    replacements = [(text, tag) for path, tag in named for text in (str(path), _relative_to(path, src_root))]
    plan = error = None
    with _data_warnings() as caught:
        try:
            plan = recipe.plan(item)
        except Exception as exc:  # bad input: listed in the summary, the run goes on
            error = exc
    for message, _path in caught:
        report.notes.append(_note(source.source_id, item.relative, message, src_root, replacements))
    if error is not None:
        failure = _note(source.source_id, item.relative, _describe(error), src_root, replacements)
        report.failures.append(failure)
        logger.warning("failed %s", failure.shown(False))
        return None
    report.dropped += plan.dropped
    return plan.slices


@dataclasses.dataclass
class _Writing:
    """One source's PNGs being written: its index rows and, per PNG, a future giving the PNG's SHA-256."""

    position: int
    source: _Source
    paths: list[Path]
    rows: list[dict]
    futures: list[Future]

    @classmethod
    def start(cls, pool, position: int, source: _Source, digest: str, slices, out: Path, recipe: str) -> _Writing:
        paths, rows, futures = [], [], []
        for frame, slice_index, render in slices:
            name = output_name(source.source_id, frame, slice_index)
            paths.append(out / name)
            futures.append(pool.submit(_write_png, render, out / name))
            frame_text = "" if frame is None else str(frame)
            values = (source.source_id, frame_text, slice_index, name, recipe, digest, "")
            rows.append(dict(zip(INDEX_COLUMNS, values)))
        return cls(position, source, paths, rows, futures)


def _settle(writing: _Writing, done: dict[int, list[dict]], report: PrepReport) -> None:
    """Wait for a source's PNGs: all written -> its rows are done; any error -> its PNGs go and it failed."""
    error = None
    for row, future in zip(writing.rows, writing.futures):
        try:
            row["png_sha256"] = future.result()
        except Exception as exc:  # disk full, permissions, interrupted: the source fails, the run goes on
            error = error or exc
    if error is None:
        done[writing.position] = writing.rows
        report.made += len(writing.rows)
        return
    for path in writing.paths:
        path.unlink(missing_ok=True)
    failure = _note(writing.source.source_id, writing.source.item.relative, _describe(error), None, [])
    report.failures.append(failure)
    logger.warning("failed %s", failure.shown(False))


def _write_png(render: Callable[[], object], path: Path) -> str:
    """Render one slice and write it atomically; returns the SHA-256 of the PNG bytes."""
    data = png_bytes(render())
    with atomic_write(path, durable=False) as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


# -- messages without source paths -------------------------------------------------------------------------------


@contextlib.contextmanager
def _data_warnings() -> Iterator[list[tuple[str, Path | None]]]:
    """Collect the DataWarnings raised inside as (message, file it names); other warnings pass on as usual."""
    collected: list[tuple[str, Path | None]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield collected
    for warning in caught:
        if issubclass(warning.category, DataWarning):
            collected.append((str(warning.message), getattr(warning.message, "path", None)))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else type(exc).__name__}"[:300]


def _relative_to(path: Path | None, root: Path | None) -> str:
    if path is None:
        return "?"
    with contextlib.suppress(ValueError, TypeError):
        return Path(path).relative_to(root).as_posix()
    return str(path)


def _note(source_id: str, relative: str, text: str, src_root: Path | None, replacements) -> SourceNote:
    """A SourceNote: `text` with --src's prefix removed, and an anonymous copy with each replacement made (longest
    first) and file names inside a replaced folder hidden."""
    if src_root is not None:
        text = text.replace(f"{src_root.resolve()}/", "").replace(f"{src_root}/", "")
    anonymous = text
    for old, new in sorted(replacements, key=lambda pair: -len(pair[0])):
        anonymous = anonymous.replace(old, new)
    anonymous = re.sub(r"(<source>|<mask>|<file>)/[^\s:,]+", r"\1/...", anonymous)  # names inside a folder
    return SourceNote(source_id, relative, text, anonymous)

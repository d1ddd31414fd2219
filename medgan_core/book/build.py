"""`medgan book build`: execute every chapter notebook with papermill, then build the Jupyter Book (1.x).

Steps:
1. each chapter `notebooks/NN_name.ipynb` runs with papermill into `<book root>/book/_generated/NN_name.ipynb`
   (written under a temporary name, renamed when complete), one progress line per chapter; a failing chapter
   is reported at the end and the others still run;
2. a local MathJax copy (the MathJax 2.7 files shipped in the `jupyter-server-mathjax` wheel) is placed in
   `book/_generated/_static/mathjax`, so the HTML renders equations with no CDN;
3. `jupyter-book build` writes `<book root>/_build/html` (notebooks are never re-executed by it).

With `out`, the book sources (`_config.yml`, `_toc.yml`, `book/`) are copied to `out` and everything is written
there instead of the repository. `smoke=True` runs each chapter with tiny parameters (`SMOKE_PARAMETERS`) and its
working files under `<book root>/_build/smoke-work`: what CI uses.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = (
    "01_data",
    "02_training",
    "03_ablation",
    "04_public_datasets",
    "05_fid_vs_humans",
    "06_clinician_turing_test",
)
GENERATED = Path("book") / "_generated"
SMOKE_WORK = Path("_build") / "smoke-work"  # below the book root; _build/ is ignored by git and by the book
MATHJAX_DIR = GENERATED / "_static" / "mathjax"


def smoke_parameters(work: str | os.PathLike) -> dict[str, dict]:
    """Tiny papermill parameters per chapter (seconds each on a CPU), all files under `work`."""
    w = Path(work).resolve()
    slices = str(w / "mni-brain")
    train_small = dict(resolution=16, batch=8, kimg=0.016, tick=0.016, snap=1, cbase=256, cmax=32, map_layers=1)
    return {
        "01_data": dict(out=slices, work=str(w), n_samples=4),
        "02_training": dict(
            run_training=True,
            data=slices,
            run_dir=str(w / "runs" / "training"),
            work=str(w / "training"),
            n_eval=16,
            metrics="none",
            **train_small,
        ),
        "03_ablation": dict(
            run_training=True,
            data=slices,
            runs_root=str(w / "runs" / "ablation"),
            work=str(w / "ablation"),
            seeds=[0],
            source_data=str(w / "liver-ct-phantom"),
            source_kimg=0.016,
            metrics="none",
            **{k: v for k, v in train_small.items()},
        ),
        "04_public_datasets": dict(
            data_root=str(w / "data"), runs_root=str(w / "runs" / "public"), work=str(w / "public-phantoms")
        ),
        "05_fid_vs_humans": dict(
            runs_root=str(w / "runs" / "ablation"),
            real_dir=slices,
            out=str(w / "turing-multi"),
            n_real=4,
            n_generated=4,
        ),
        "06_clinician_turing_test": dict(
            generator=str(w / "runs" / "training"),
            real_dir=slices,
            out=str(w / "turing-clinician"),
            n_real=6,
            n_generated=6,
        ),
    }


def select_chapters(spec: str | None) -> list[str]:
    """'1,3' or '01_data,03_ablation' or None (all) -> chapter names in book order."""
    if not spec:
        return list(CHAPTERS)
    chosen = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        matches = [
            c
            for c in CHAPTERS
            if c == part or (part.isdigit() and int(c[:2]) == int(part)) or c.split("_", 1)[1] == part
        ]
        if not matches:
            raise ValueError(f"unknown chapter {part!r}; chapters: {', '.join(CHAPTERS)} (or their numbers 1-6)")
        chosen += [c for c in matches if c not in chosen]
    return [c for c in CHAPTERS if c in chosen]


def prepare_book_root(out: str | os.PathLike | None) -> Path:
    """The folder the book is built in: the repository, or `out` with the book's sources copied into it."""
    if out is None:
        return REPO_ROOT
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO_ROOT / name, root / name)
    (root / "book").mkdir(exist_ok=True)
    for path in (REPO_ROOT / "book").iterdir():
        if path.is_file():
            shutil.copy2(path, root / "book" / path.name)
    return root


def install_mathjax(book_root: Path) -> Path:
    """Copy MathJax 2.7 (from the jupyter-server-mathjax package) into the book's static folder."""
    target = book_root / MATHJAX_DIR
    if (target / "MathJax.js").is_file():
        return target
    try:
        import jupyter_server_mathjax
    except ImportError as exc:
        raise RuntimeError(
            "the book serves MathJax locally from the jupyter-server-mathjax package: "
            "pip install jupyter-server-mathjax (part of medgan-core[book])"
        ) from exc
    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    partial = target.with_name("mathjax.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


class _KnownParameters(logging.Filter):
    """Drops papermill's 'Passed unknown parameter' warning: its inspector reads only one `name = value` per line,
    while the chapters also assign several names on one line (their names are checked by `check_parameters`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passed unknown parameter")


def check_parameters(notebook: Path, parameters: dict) -> None:
    """Raise ValueError naming any parameter the notebook's '# Parameters' cell does not define."""
    import nbformat

    from medgan_core.book.display import parameter_names

    cells = nbformat.read(notebook, as_version=4).cells
    known = parameter_names(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"{notebook.name}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")


def execute_chapter(name: str, book_root: Path, parameters: dict, cwd: Path) -> None:
    """Run notebooks/<name>.ipynb with papermill into <book_root>/book/_generated/<name>.ipynb."""
    import papermill

    source = REPO_ROOT / "notebooks" / f"{name}.ipynb"
    check_parameters(source, parameters)
    papermill_log = logging.getLogger("papermill")
    if not any(isinstance(f, _KnownParameters) for f in papermill_log.filters):
        papermill_log.addFilter(_KnownParameters())
    target = book_root / GENERATED / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{name}.partial.ipynb")
    try:
        papermill.execute_notebook(
            str(source),
            str(partial),
            parameters=parameters,
            cwd=str(cwd),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
        )
    finally:
        if partial.is_file():
            os.replace(partial, target)  # a failed chapter still shows its error in the book


def execute_chapters(chapters: list[str], book_root: Path, smoke: bool = False, log=print) -> list[tuple[str, str]]:
    """Execute `chapters` in order; returns [(chapter, error)] for those that failed (the others still run)."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    params = smoke_parameters(book_root / SMOKE_WORK) if smoke else {}
    failures = []
    for index, name in enumerate(chapters, 1):
        started = time.perf_counter()
        log(f"[book] chapter {index}/{len(chapters)} {name}: running{' (smoke parameters)' if smoke else ''} ...")
        try:
            execute_chapter(name, book_root, params.get(name, {}), cwd=REPO_ROOT)
        except Exception as exc:  # papermill raises on the first failing cell; the others still run
            reason = f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"
            failures.append((name, reason.splitlines()[0][:300]))
            log(f"[book] chapter {index}/{len(chapters)} {name}: FAILED after {time.perf_counter() - started:.0f} s")
            continue
        log(f"[book] chapter {index}/{len(chapters)} {name}: done in {time.perf_counter() - started:.0f} s")
    return failures


PAGE_CSS = """/* medgan book: output lines wrap at the page edge instead of being cut off or scrolled away */
div.cell_output pre, div.output pre { white-space: pre-wrap; overflow-wrap: anywhere; }
/* a table wider than the column scrolls inside it, its key (index) column first; headers wrap */
div.cell_output table { display: block; max-width: 100%; overflow-x: auto; }
div.cell_output table th { white-space: normal; }
/* figures never run past the page */
div.cell_output img { max-width: 100%; height: auto; }
"""


def install_css(book_root: Path) -> Path:
    """The book's small stylesheet (named in _config.yml's html_css_files) in the static folder."""
    target = book_root / GENERATED / "_static" / "medgan.css"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(PAGE_CSS)
    return target


REPOSITORY_FALLBACK = "the repository this book was built from"


def parameter_values(notebook: Path) -> dict:
    """Literal values assigned in a notebook's '# Parameters' cell (`a, b = 1, 2` included; others skipped)."""
    import ast

    import nbformat

    values = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        if "parameters" not in cell.metadata.get("tags", []):
            continue
        for node in ast.parse(cell.source).body:
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                pairs = [(target, node.value)]
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    pairs = list(zip(target.elts, node.value.elts))
                for name, value in pairs:
                    if isinstance(name, ast.Name):
                        try:
                            values[name.id] = ast.literal_eval(value)
                        except ValueError:
                            pass
    return values


def demo_defaults(notebook: Path = REPO_ROOT / "notebooks" / "02_training.ipynb") -> str:
    """The training chapter's default network and length in words, read from its parameters cell."""
    p = parameter_values(notebook)
    parts = [f"{p['resolution']} x {p['resolution']} pixels" if "resolution" in p else None]
    parts += [f"{name} {p[name]:g}" if isinstance(p.get(name), float) else f"{name} {p[name]}"
              for name in ("cbase", "cmax", "batch", "kimg") if name in p]  # fmt: skip
    return ", ".join(part for part in parts if part) or "see the parameters of notebooks/02_training.ipynb"


def book_config(book_root: Path) -> Path:
    """_config.yml with what is computed at build time: the repository link (from `repository.url`, the one place
    it is set; empty gives the fallback words and no repository button) and the demo's defaults, as MyST
    substitutions `{{ repository }}` and `{{ demo_defaults }}`. Written to <book_root>/_build/_config.yml."""
    import yaml

    config = yaml.safe_load((book_root / "_config.yml").read_text(encoding="utf-8"))
    url = str((config.get("repository") or {}).get("url") or "").strip()
    parse = config.setdefault("parse", {})
    substitutions = parse.setdefault("myst_substitutions", {})
    substitutions["repository"] = f"[{url}]({url})" if url else REPOSITORY_FALLBACK
    substitutions["demo_defaults"] = demo_defaults()
    html = config.setdefault("html", {})
    html["use_repository_button"] = bool(url)
    target = book_root / "_build" / "_config.yml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


def build_html(book_root: Path, log=print) -> Path:
    """`jupyter-book build` of `book_root` into book_root/_build/html; raises with the tool's output on failure."""
    install_mathjax(book_root)
    install_css(book_root)
    missing = [c for c in CHAPTERS if not (book_root / GENERATED / f"{c}.ipynb").is_file()]
    if missing:
        raise RuntimeError(
            f"chapters not executed yet: {', '.join(missing)}; run `medgan book build` without --chapters first"
        )
    started = time.perf_counter()
    log("[book] jupyter-book build ...")
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(book_root), "--all", "-q",
               "--config", str(book_config(book_root))]  # fmt: skip
    result = subprocess.run(command, cwd=book_root, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    html = book_root / "_build" / "html"
    log(f"[book] HTML in {html / 'index.html'} ({time.perf_counter() - started:.0f} s)")
    return html


def build(chapters: str | None = None, smoke: bool = False, out=None, html: bool = True, log=print) -> Path:
    """Execute the chapters and build the book; returns the HTML folder. Raises after building if a chapter failed."""
    book_root = prepare_book_root(out)
    started = time.perf_counter()
    failures = execute_chapters(select_chapters(chapters), book_root, smoke=smoke, log=log)
    log(f"[book] notebooks executed in {time.perf_counter() - started:.0f} s")
    html_dir = build_html(book_root, log=log) if html else book_root / "_build" / "html"
    if failures:
        lines = "\n".join(f"  {name}: {error}" for name, error in failures)
        raise RuntimeError(f"{len(failures)} chapter(s) failed (their errors show in the book):\n{lines}")
    return html_dir

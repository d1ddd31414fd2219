"""What the chapter notebooks show besides figures: admonitions, the parameters in effect, labelled tables.

Admonitions are emitted as HTML with Sphinx's admonition classes (`admonition warning`, `admonition note`), so
they look the same in Jupyter, in nbval's output and in the built book (the book theme styles those classes).
"""

from __future__ import annotations

import ast
import html

import pandas as pd

_KINDS = ("note", "important", "warning", "caution", "tip")


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def admonition(title: str, body: str, kind: str = "note", show: bool = True) -> str:
    """A visible box: `kind` is one of note, important, warning, caution, tip. Returns (and displays) its HTML.

    `body` is plain text; blank lines separate paragraphs, text between backticks becomes code.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    paragraphs = []
    for block in str(body).strip().split("\n\n"):
        parts = html.escape(" ".join(block.split())).split("`")
        text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
        paragraphs.append(f"<p>{text}</p>")
    markup = (
        f'<div class="admonition {kind}"><p class="admonition-title">{html.escape(title)}</p>'
        + "".join(paragraphs)
        + "</div>"
    )
    if show:
        from IPython.display import HTML

        _display(HTML(markup))
    return markup


def missing_resource(what: str, consequence: str, fix: str, show: bool = True) -> str:
    """The standard warning when a chapter cannot compute something: what is missing, what is not shown, the fix."""
    body = f"{consequence}\n\nTo get it: {fix}"
    return admonition(f"Missing: {what}", body, kind="warning", show=show)


def paper_label(frame: pd.DataFrame, caption: str) -> pd.io.formats.style.Styler:
    """A table of the paper's numbers, captioned so that nobody takes them for this book's results."""
    return frame.style.set_caption(f"The paper's numbers (Woodland et al. 2022): {caption}")


PARAMETERS_HEADER = "# parameters"  # first line of the notebook's parameters cell and of papermill's injected cell


def parameter_names(sources) -> list[str]:
    """Names assigned at top level in the code cells whose first line starts with '# Parameters', in order."""
    names: list[str] = []
    for source in sources:
        if not str(source).lstrip().lower().startswith(PARAMETERS_HEADER):
            continue
        for node in ast.parse(source).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            flat = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]  # a, b = 1, 2
            names += [t.id for t in flat if isinstance(t, ast.Name) and t.id not in names]
    return names


class Parameters(dict):
    """The parameters in effect (name -> value), shown as a two-column table in HTML and as `name = repr` lines."""

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td><code>{html.escape(repr(v))}</code></td></tr>"
            for k, v in self.items()
        )
        return f"<table><thead><tr><th>parameter</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"

    def __repr__(self) -> str:
        return "\n".join(f"{k} = {v!r}" for k, v in self.items())


def show_parameters(namespace: dict) -> Parameters:
    """The notebook's parameters with the values in effect (papermill's overrides included), without retyping
    their names: the names come from the executed cells that start with '# Parameters' (IPython's `In`).

    Call it as `show_parameters(globals())` in the cell after the parameters cell; it returns the table (a dict).
    Where cells run without history (nbval), the cells' sources come from IPython's source cache instead.
    """
    names = parameter_names(namespace.get("In", []))
    if not names:  # cells run without history (nbval): IPython still caches every cell's source for tracebacks
        import linecache

        names = parameter_names("".join(entry[2]) for entry in list(linecache.cache.values()) if len(entry) > 2)
    if not names:
        raise RuntimeError(
            "no executed cell starts with '# Parameters': start the notebook's parameters cell with that comment"
        )
    return Parameters((name, namespace[name]) for name in names)


def show_figure(fig=None, dpi: int = 100) -> None:
    """Display a matplotlib figure as a PNG and close it.

    Works whatever the backend (the library's plotting modules select Agg, and `MPLBACKEND=Agg` is common in
    batch runs, both of which silence `plt.show()` in a notebook).
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    fig = fig if fig is not None else plt.gcf()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    _display(Image(data=buffer.getvalue(), format="png"))


def int_list(value) -> list[int]:
    """A list parameter as integers, whether papermill passed a list, one integer or text ('0,1', '[0, 1]', '0-4')."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    from medgan_core.utils.io import parse_int_list

    return parse_int_list(str(value).strip().strip("[]()"))


def dash_missing(frame: pd.DataFrame, text: str = "-") -> pd.DataFrame:
    """The table as the page shows it: missing values (NaN, None) as `text` instead of 'NaN'."""
    return frame.astype(object).where(frame.notna(), text)


def correlation_words(result, what: str) -> str:
    """Markdown on a correlation (a `medgan_core.turing` CorrelationResult): r, p and its interval, and whether the
    interval excludes 0, so that "strong" is never said of an interval that allows no correlation at all."""
    level = f"{result.confidence:.0%}"
    numbers = (f"{what}: r = {result.r:.2f} over n = {result.n} (p = {result.p_value:.3f}; {level} CI "
               f"[{result.ci_low:.2f}, {result.ci_high:.2f}]).")  # fmt: skip
    if result.ci_low <= 0 <= result.ci_high:
        return (f"{numbers} The interval includes 0: with {result.n} points the sign of the correlation is not "
                f"established at the {level} level, however large r is.")  # fmt: skip
    sign = "negative" if result.r < 0 else "positive"
    return f"{numbers} The interval excludes 0: a {sign} correlation at the {level} level."


def range_words(name: str, low: float, high: float, scale: tuple[float, float]) -> str:
    """Whether an interval stays on a bounded rating scale, in words (for a mean +- 1.96 SD range)."""
    lo, hi = scale
    if low >= lo and high <= hi:
        return f"{name}: [{low:.2f}, {high:.2f}] lies within the {lo:g}-{hi:g} scale."
    past = ([f"below {lo:g}"] if low < lo else []) + ([f"above {hi:g}"] if high > hi else [])
    return (f"{name}: [{low:.2f}, {high:.2f}] runs {' and '.join(past)}, off the {lo:g}-{hi:g} scale that no rating "
            "can leave: the ratings are bounded and skewed, so mean +- 1.96 SD is only a rough description of "
            "their spread, not a range that individual ratings fill.")  # fmt: skip

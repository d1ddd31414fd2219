"""Helpers for the book: chapter list and build driver, run-directory readers, the paper's tables for display,
visible admonitions for missing resources, and the small demo-data steps the chapter notebooks share.

The notebooks stay thin: everything they compute comes from `medgan_core`; this package only reads, arranges and
shows it.
"""

from medgan_core.book.display import admonition, missing_resource, paper_label, show_figure, show_parameters
from medgan_core.book.runs import RunDirectory, find_runs

__all__ = [
    "RunDirectory",
    "admonition",
    "find_runs",
    "missing_resource",
    "paper_label",
    "show_figure",
    "show_parameters",
]

"""`medgan train`: the trainer's command line, defined once in medgan_core.train (= `python -m medgan_core.train`)."""

from __future__ import annotations

from medgan_core.train import main as train

__all__ = ["train"]

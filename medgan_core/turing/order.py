"""The per-rater shuffled order of a Turing test page, reproduced in Python from the seed the page records.

A test built with `shuffle_per_rater` shows each rater the sections in a random order and the images of each
section in a random order, drawn by the page from a 32-bit seed that it writes into the exported CSV
(`order_seed`). The page's generator is mulberry32 and its shuffle the Fisher-Yates shuffle (from the last
position down); `shuffled_order` repeats both step by step, so an analyst can rebuild exactly what a rater saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

_MASK = 0xFFFFFFFF


def mulberry32(seed: int) -> Callable[[], float]:
    """The page's random generator: a function returning floats in [0, 1), as JavaScript's mulberry32."""
    state = seed & _MASK

    def draw() -> float:
        nonlocal state
        state = (state + 0x6D2B79F5) & _MASK
        t = ((state ^ (state >> 15)) * (1 | state)) & _MASK
        t = ((t + (((t ^ (t >> 7)) * (61 | t)) & _MASK)) & _MASK) ^ t
        return ((t ^ (t >> 14)) & _MASK) / 2**32

    return draw


def fisher_yates(items: list, draw: Callable[[], float]) -> list:
    """Shuffle `items` in place from the last position down, j = floor(draw() * (i + 1)); returns it."""
    for i in range(len(items) - 1, 0, -1):
        j = int(draw() * (i + 1))
        items[i], items[j] = items[j], items[i]
    return items


def shuffled_order(section_numbers: Sequence[str], seed: int) -> list[int]:
    """Positions (into the key's order) in the order a rater with `seed` saw them.

    section_numbers: the section number of each image in the key's order (the key's section_number column).
    Sections are shuffled first, then the images within each section, all from one generator.
    """
    groups: dict[str, list[int]] = {}
    for index, number in enumerate(section_numbers):
        groups.setdefault(str(number), []).append(index)
    draw = mulberry32(seed)
    order = fisher_yates(list(groups), draw)
    return [index for number in order for index in fisher_yates(list(groups[number]), draw)]

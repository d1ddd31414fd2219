"""Reading and validating Turing-test responses and answer keys.

Responses are a CSV (or DataFrame) with one row per rater and image:

    rater, image, answer (real|fake), [likert (1..5)], [section], [truth (real|generated)], [test_id], ...

The truth comes from the answer key written by `medgan turing build` (columns image, truth, section,
section_number, source, test_id) or, without a key, from a `truth` column. The HTML test also exports position,
order_seed and answered_at, which are read but not needed. With a key, a file whose test_id is not the key's is
reported once (answers of another test), and a section that is not the key's section of that image is an error.
Every problem in a file is collected and reported at once, with line numbers (the header is line 1), in a
`TuringDataError`. Files must be UTF-8 (the HTML test writes UTF-8).
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

ANSWERS = ("real", "fake")
TRUTHS = ("real", "generated")
LIKERT_RANGE = (1, 5)  # 1 = surely fake, 5 = surely real
_MAX_LISTED = 25  # problems listed in an error message; the rest are counted


class TuringDataError(ValueError):
    """Responses or a key that cannot be analysed; `problems` lists every offending row ('line N: ...')."""

    def __init__(self, source: str, problems: list[str], fix: str):
        self.source = source
        self.problems = list(problems)
        listed = "\n".join(f"  {problem}" for problem in self.problems[:_MAX_LISTED])
        more = len(self.problems) - _MAX_LISTED
        if more > 0:
            listed += f"\n  ... and {more} more"
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{listed}\nFix: {fix}")


def _read_rows(table, what: str) -> tuple[str, list[tuple[int, dict[str, str]]], list[str]]:
    """(source name, [(line number, {column: stripped text})], column names) of a CSV path or a DataFrame."""
    if isinstance(table, pd.DataFrame):
        columns = [str(c).strip().lower() for c in table.columns]
        rows = []
        for position, values in enumerate(table.itertuples(index=False, name=None)):
            texts = ["" if _is_blank(v) else str(v).strip() for v in values]
            rows.append((position + 2, dict(zip(columns, texts))))
        return f"{what} (DataFrame)", rows, columns
    path = Path(os.fspath(table))
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    reader = csv.reader(io.StringIO(_read_utf8(path, what), newline=""))
    header = next(reader, None)
    if header is None:
        raise TuringDataError(str(path), ["the file is empty"], f"write a header line naming the {what} columns")
    columns = [c.strip().lower() for c in header]
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        rows.append((reader.line_num, dict(zip(columns, (v.strip() for v in values)))))
    return str(path), rows, columns


def _read_utf8(path: Path, what: str) -> str:
    """The text of `path` as UTF-8 (a byte-order mark is dropped); other encodings are a TuringDataError."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TuringDataError(
            str(path),
            [f"line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8 text (the file is in another encoding)"],
            f"save the {what} file as UTF-8 (in Excel: 'CSV UTF-8'; the HTML test downloads UTF-8)",
        ) from None


def _is_blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def load_key(key) -> pd.DataFrame:
    """Read an answer key (CSV path or DataFrame; columns image, truth, optional section, section_number, test_id).

    Returns a DataFrame indexed by image id with columns truth (real|generated), section (str; 'all' without a
    section column) and section_number (str, as the page shows it; '' without one, and then the responses'
    section column is not checked). `attrs["test_id"]` is the key's test id ('' without one).
    """
    source, rows, columns = _read_rows(key, "answer key")
    missing = [c for c in ("image", "truth") if c not in columns]
    if missing:
        raise TuringDataError(
            source,
            [f"missing column(s) {missing}; found {columns}"],
            "use the key CSV that `medgan turing build` wrote beside the test (columns image, truth, section, source)",
        )
    problems, seen, records, test_ids = [], {}, [], {}
    for line, row in rows:
        image, truth = row.get("image", ""), row.get("truth", "").lower()
        if row.get("test_id"):
            test_ids.setdefault(row["test_id"], line)
        if not image:
            problems.append(f"line {line}: empty image id")
            continue
        if truth not in TRUTHS:
            problems.append(f"line {line}: truth {row.get('truth', '')!r} for image {image!r} is not real|generated")
        if image in seen:
            problems.append(f"line {line}: image {image!r} listed twice (first on line {seen[image]})")
            continue
        seen[image] = line
        records.append(
            {
                "image": image,
                "truth": truth,
                "section": row.get("section", "") or "all",
                "section_number": row.get("section_number", ""),
            }
        )
    if not records and not problems:
        problems.append("no images in the key")
    if len(test_ids) > 1:
        listed = ", ".join(f"{test_id!r} (line {line})" for test_id, line in test_ids.items())
        problems.append(f"test ids {listed}: one key per test")
    if problems:
        raise TuringDataError(source, problems, "each image id once, with truth 'real' or 'generated'")
    table = pd.DataFrame.from_records(records).set_index("image")
    table.attrs["test_id"] = next(iter(test_ids), "")
    return table


def load_responses(responses, key=None) -> pd.DataFrame:
    """Read and validate responses (a CSV path or DataFrame, or a list of them: e.g. one CSV per rater as the
    HTML test downloads them), joining the truth from `key` when given.

    Returns one row per (rater, image) with columns rater, image, answer (real|fake), truth (real|generated),
    section (str; from the key when it has one, else the responses' section column, else 'all'), likert
    (float 1..5 or NaN) and line (the row's line in the source, header = line 1).
    Raises TuringDataError listing every bad row: bad answers, Likert scores out of 1..5, duplicate answers of
    a rater to an image, unknown image ids, sections that are not the key's, conflicting or missing truths,
    images a rater did not answer, and (once per file) answers whose test_id is not the key's or differs
    between files.
    """
    key_table = load_key(key) if key is not None else None
    inputs = list(responses) if isinstance(responses, (list, tuple)) else [responses]
    if not inputs:
        raise ValueError("no responses given")
    problems: list[str] = []
    rows, source = _read_response_files(inputs, key_table, problems)
    records: list[dict] = []
    first_line: dict[tuple[str, str], str] = {}
    truth_of: dict[str, tuple[str, str]] = {}
    for line, where, row in rows:
        rater, image, answer = row.get("rater", ""), row.get("image", ""), row.get("answer", "").lower()
        if not rater or not image:
            problems.append(f"{where}: empty {'rater' if not rater else 'image'}")
            continue
        if not answer:
            problems.append(f"{where}: missing answer for rater {rater!r}, image {image!r}")
        elif answer not in ANSWERS:
            problems.append(f"{where}: answer {row['answer']!r} is not real|fake")
        likert = _parse_likert(row.get("likert", ""), where, problems)
        if (rater, image) in first_line:
            problems.append(
                f"{where}: duplicate answer of rater {rater!r} to image {image!r} "
                f"(first on {first_line[(rater, image)]})"
            )
            continue
        first_line[(rater, image)] = where
        truth_and_section = _truth_and_section(row, image, where, key_table, truth_of, problems)
        if truth_and_section is None:
            continue
        truth, section = truth_and_section
        records.append(
            dict(rater=rater, image=image, answer=answer, truth=truth, section=section, likert=likert, line=line)
        )
    problems.extend(_missing_answers(records, key_table))
    if not records and not problems:
        problems.append("no responses")
    if problems:
        raise TuringDataError(
            source, problems, "one row per rater and image, answer 'real' or 'fake', likert a whole number 1-5"
        )
    table = pd.DataFrame.from_records(records)
    return table.astype({"likert": np.float64})


def _read_response_files(inputs: list, key_table: pd.DataFrame | None, problems: list[str]):
    """All rows of the response files as (line, where, row), where = "line N" or "FILE line N"; and the name of
    the source for errors. A missing column is an error at once; a file of another test adds one problem."""
    rows: list[tuple[int, str, dict[str, str]]] = []
    test_of_file: dict[str, str] = {}  # the first file of each test id, when no key gives the test id
    for item in inputs:
        source, file_rows, columns = _read_rows(item, "responses")
        missing = [c for c in ("rater", "image", "answer") if c not in columns]
        if key_table is None and "truth" not in columns:
            missing.append("truth")
        if missing:
            fix = "responses need columns rater, image, answer (real|fake), optional likert and section"
            if "truth" in missing:
                fix += "; pass the answer key (--key KEY.csv) or add a truth column (real|generated)"
            raise TuringDataError(source, [f"missing column(s) {missing}; found {columns}"], fix)
        prefix = f"{Path(source).name} " if len(inputs) > 1 else ""
        wrong_test = _wrong_test(source, file_rows, key_table, test_of_file)
        if wrong_test:
            problems.append(wrong_test)
            continue  # its image ids are another test's: one problem instead of one per row
        rows += [(line, f"{prefix}line {line}", row) for line, row in file_rows]
    if len(inputs) > 1:
        source = f"{len(inputs)} response files"
    return rows, source


def _truth_and_section(row: dict, image: str, where: str, key_table: pd.DataFrame | None, truth_of: dict,
                       problems: list[str]) -> tuple[str, str] | None:  # fmt: skip
    """The truth and section of a response row: from the key (None for an image the key lacks), else from the
    row's own columns, checked against the rows before it (`truth_of`: image -> (truth, where))."""
    if key_table is not None:
        if image not in key_table.index:
            problems.append(f"{where}: unknown image id {image!r} (not in the answer key)")
            return None
        truth, section = key_table.at[image, "truth"], key_table.at[image, "section"]
        shown, number = row.get("section", ""), key_table.at[image, "section_number"]
        if shown and number and shown not in (section, number):
            problems.append(
                f"{where}: section {shown!r} for image {image!r}, but the key puts it in section {number} ({section})"
            )
    else:
        truth, section = row.get("truth", "").lower(), row.get("section", "") or "all"
        if truth not in TRUTHS:
            problems.append(f"{where}: truth {row.get('truth', '')!r} is not real|generated")
        elif image in truth_of and truth_of[image][0] != truth:
            problems.append(
                f"{where}: image {image!r} has truth {truth!r} here but {truth_of[image][0]!r} on {truth_of[image][1]}"
            )
        truth_of.setdefault(image, (truth, where))
    return truth, section


def _wrong_test(source: str, rows: list, key_table: pd.DataFrame | None, test_of_file: dict[str, str]) -> str:
    """A problem when a file's test_id values are not the key's test id (or, without a key, not those of the
    files before it); '' when the file has no test_id column or its ids agree."""
    ids = sorted({row["test_id"] for _, row in rows if row.get("test_id")})
    name = Path(source).name
    expected = key_table.attrs.get("test_id", "") if key_table is not None else ""
    if expected:
        if ids and ids != [expected]:
            return (
                f"{name}: answers of test {', '.join(map(repr, ids))}, but the key is of test {expected!r}: "
                "these answers belong to another test; pass that test's answer_key.csv"
            )
        return ""
    if len(ids) > 1:
        return f"{name}: answers of {len(ids)} tests ({', '.join(map(repr, ids))}) in one file"
    for test_id in ids:
        if test_of_file and test_id not in test_of_file:
            first, other = next(iter(test_of_file.items()))
            return f"{name}: answers of test {test_id!r}, but {other} holds answers of test {first!r}"
        test_of_file.setdefault(test_id, name)
    return ""


def _parse_likert(text: str, where: str, problems: list[str]) -> float:
    """The Likert score in `text` as a float (NaN when blank); a problem is recorded when it is not 1..5."""
    if not text:
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{where}: likert {text!r} is not a number")
        return float("nan")
    low, high = LIKERT_RANGE
    if not value.is_integer() or not low <= value <= high:
        problems.append(f"{where}: likert {text!r} is out of range (whole numbers {low}-{high})")
        return float("nan")
    return value


def _missing_answers(records: list[dict], key_table: pd.DataFrame | None) -> list[str]:
    """'rater R: no answer for images [...]' for each rater who skipped images of the key (or of the file)."""
    expected = set(key_table.index) if key_table is not None else {r["image"] for r in records}
    answered: dict[str, set[str]] = defaultdict(set)
    for record in records:
        answered[record["rater"]].add(record["image"])
    problems = []
    for rater, images in answered.items():
        skipped = sorted(expected - images)
        if skipped:
            shown = ", ".join(skipped[:10]) + (f", ... ({len(skipped)} in all)" if len(skipped) > 10 else "")
            problems.append(f"rater {rater!r}: no answer for {len(skipped)} image(s): {shown}")
    return problems

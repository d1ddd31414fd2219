"""Validation of responses and keys: every bad row is reported with its line number in one ValueError."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from medgan_core.turing import TuringDataError, analyze, load_responses

KEY = "image,truth,section,source\nimg-a,real,exp1,r/a.png\nimg-b,generated,exp1,g/b.png\nimg-c,real,exp1,r/c.png\n"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def key_path(tmp_path):
    return write(tmp_path / "key.csv", KEY)


def test_valid_responses_join_truth_and_section_from_the_key(tmp_path, key_path):
    responses = write(
        tmp_path / "r.csv",
        "rater,image,answer,likert,section\nann,img-a,real,5,1\nann,img-b,Real,4,1\nann,img-c,fake,2,1\n",
    )
    table = load_responses(responses, key_path)
    assert table.truth.tolist() == ["real", "generated", "real"]
    assert table.answer.tolist() == ["real", "real", "fake"]
    assert table.section.unique().tolist() == ["exp1"]  # the key's name wins over the page's section number
    assert table.likert.tolist() == [5.0, 4.0, 2.0]
    results = analyze(responses, key=key_path)
    row = results.per_rater.loc["ann"]
    assert (row.tp, row.fn, row.fp, row.tn) == (1, 1, 1, 0)
    assert row.fpr == 1.0 and row.fnr == 0.5 and math.isclose(row.precision, 0.5)


def test_every_problem_is_listed_with_its_line(tmp_path, key_path):
    text = (
        "rater,image,answer,likert\n"
        "ann,img-a,real,5\n"  # line 2: fine
        "ann,img-a,fake,4\n"  # line 3: duplicate of line 2
        "ann,img-b,maybe,3\n"  # line 4: bad answer
        "ann,img-x,real,3\n"  # line 5: unknown image
        "bob,img-a,real,7\n"  # line 6: Likert out of range
        "bob,img-b,fake,2.5\n"  # line 7: Likert not whole
        "bob,img-c,,3\n"  # line 8: missing answer
    )
    with pytest.raises(TuringDataError) as info:
        load_responses(write(tmp_path / "r.csv", text), key_path)
    error = info.value
    assert isinstance(error, ValueError)
    message = str(error)
    assert "r.csv" in message and "Fix:" in message
    assert "line 3: duplicate answer of rater 'ann' to image 'img-a' (first on line 2)" in message
    assert "line 4: answer 'maybe' is not real|fake" in message
    assert "line 5: unknown image id 'img-x'" in message
    assert "line 6: likert '7' is out of range" in message
    assert "line 7: likert '2.5' is out of range" in message
    assert "line 8: missing answer" in message
    assert "rater 'ann': no answer for 1 image(s): img-c" in message
    assert len(error.problems) == 7


def test_missing_answers_without_a_key_use_the_images_of_the_file(tmp_path):
    text = "rater,image,answer,truth\nann,a,real,real\nann,b,fake,generated\nbob,a,real,real\n"
    with pytest.raises(TuringDataError, match=r"rater 'bob': no answer for 1 image\(s\): b"):
        load_responses(write(tmp_path / "r.csv", text))


def test_conflicting_truths_and_bad_truth_values(tmp_path):
    text = "rater,image,answer,truth\nann,a,real,real\nbob,a,real,generated\ncat,a,real,fake\n"
    with pytest.raises(TuringDataError) as info:
        load_responses(write(tmp_path / "r.csv", text))
    message = str(info.value)
    assert "line 3: image 'a' has truth 'generated' here but 'real' on line 2" in message
    assert "line 4: truth 'fake' is not real|generated" in message


def test_missing_truth_asks_for_the_key(tmp_path):
    with pytest.raises(TuringDataError, match="--key"):
        load_responses(write(tmp_path / "r.csv", "rater,image,answer\nann,a,real\n"))


def test_bad_key_is_reported(tmp_path):
    key = write(tmp_path / "key.csv", "image,truth\na,real\na,generated\nb,maybe\n")
    with pytest.raises(TuringDataError) as info:
        load_responses(write(tmp_path / "r.csv", "rater,image,answer\nann,a,real\n"), key)
    message = str(info.value)
    assert "key.csv" in message
    assert "line 3: image 'a' listed twice (first on line 2)" in message
    assert "line 4: truth 'maybe'" in message


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_responses(tmp_path / "nope.csv")


def test_dataframe_input_and_blank_likert(tmp_path):
    frame = pd.DataFrame(
        {
            "rater": ["a", "a"],
            "image": ["x", "y"],
            "answer": ["real", "fake"],
            "truth": ["real", "generated"],
            "likert": [None, 3],
        }
    )
    table = load_responses(frame)
    assert math.isnan(table.likert.iloc[0]) and table.likert.iloc[1] == 3.0
    assert table.section.tolist() == ["all", "all"]


def test_several_files_one_per_rater(tmp_path, key_path):
    ann = write(tmp_path / "ann.csv", "rater,image,answer\nann,img-a,real\nann,img-b,real\nann,img-c,fake\n")
    bob = write(tmp_path / "bob.csv", "rater,image,answer\nbob,img-a,fake\nbob,img-b,fake\nbob,img-b,real\n")
    with pytest.raises(TuringDataError) as info:
        load_responses([ann, bob], key_path)
    message = str(info.value)
    assert message.startswith("2 response files:")
    assert "bob.csv line 4: duplicate answer of rater 'bob' to image 'img-b' (first on bob.csv line 3)" in message
    assert "rater 'bob': no answer for 1 image(s): img-c" in message
    bob.write_text("rater,image,answer\nbob,img-a,fake\nbob,img-b,fake\nbob,img-c,real\n", encoding="utf-8")
    results = analyze([ann, bob], key=key_path)
    assert results.per_rater.loc["bob", ["tp", "fn", "fp", "tn"]].tolist() == [1, 1, 0, 1]

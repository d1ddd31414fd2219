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


def test_a_file_that_is_not_utf8_names_the_file_and_line(tmp_path, key_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("rater,image,answer\nann,img-a,real\nMüller,img-b,fake\n".encode("cp1252"))
    with pytest.raises(TuringDataError) as info:
        load_responses(path, key_path)
    message = str(info.value)
    assert str(path) in message and "line 3: byte 0xfc is not UTF-8" in message and "UTF-8" in message
    key = write(tmp_path / "key1252.csv", "image,truth\nimg-é,real\n")
    key.write_bytes(key.read_text(encoding="utf-8").encode("latin-1"))
    with pytest.raises(TuringDataError, match=r"key1252\.csv[\s\S]*line 2: byte 0xe9"):
        load_responses(path, key)
    path.write_bytes(b"\xef\xbb\xbf" + "rater,image,answer\nMüller,img-a,real\n".encode())  # UTF-8 with a BOM
    with pytest.raises(TuringDataError, match="no answer for 2 image"):  # read fine: only the missing rows
        load_responses(path, key_path)


KEY_WITH_ID = (
    "image,truth,section,section_number,source,test_id\n"
    "img-a,real,exp1,1,r/a.png,t1\nimg-b,generated,exp1,1,g/b.png,t1\n"
    "img-c,real,exp2,2,r/c.png,t1\nimg-d,generated,exp2,2,g/d.png,t1\n"
)


def test_answers_of_another_test_are_one_problem_naming_both_tests(tmp_path):
    key = write(tmp_path / "key.csv", KEY_WITH_ID)
    rows = "".join(f"ann,img-{c},real,{n},t2\n" for c, n in zip("wxyz", "1122"))
    other = write(tmp_path / "other.csv", "rater,image,answer,section,test_id\n" + rows)
    with pytest.raises(TuringDataError) as info:
        load_responses(other, key)
    assert info.value.problems == [
        "other.csv: answers of test 't2', but the key is of test 't1': these answers belong to another test; "
        "pass that test's answer_key.csv"
    ]
    good = write(tmp_path / "good.csv", "rater,image,answer,section,test_id\n" + rows.replace("t2", "t1"))
    good.write_text(good.read_text().replace("img-w", "img-a").replace("img-x", "img-b"), encoding="utf-8")
    good.write_text(good.read_text().replace("img-y", "img-c").replace("img-z", "img-d"), encoding="utf-8")
    assert len(load_responses(good, key)) == 4
    with pytest.raises(TuringDataError, match="holds answers of test 't1'"):  # no key: files of two tests
        load_responses(
            [
                write(tmp_path / "a.csv", "rater,image,answer,truth,test_id\nann,x,real,real,t1\n"),
                write(tmp_path / "b.csv", "rater,image,answer,truth,test_id\nbob,x,real,real,t2\n"),
            ]
        )


def test_sections_are_checked_against_the_key(tmp_path):
    key = write(tmp_path / "key.csv", KEY_WITH_ID)
    text = "rater,image,answer,section\nann,img-a,real,1\nann,img-b,real,2\nann,img-c,fake,exp2\nann,img-d,fake,\n"
    with pytest.raises(TuringDataError) as info:
        load_responses(write(tmp_path / "r.csv", text), key)
    assert info.value.problems == ["line 3: section '2' for image 'img-b', but the key puts it in section 1 (exp1)"]
    table = load_responses(write(tmp_path / "r.csv", text.replace("img-b,real,2", "img-b,real,1")), key)
    assert table.section.tolist() == ["exp1", "exp1", "exp2", "exp2"]  # numbers, names and blanks all accepted
    with pytest.raises(TuringDataError, match=r"test ids 't1' \(line 2\), 't9' \(line 3\): one key per test"):
        load_responses(tmp_path / "r.csv", write(tmp_path / "k2.csv", KEY_WITH_ID.replace("b.png,t1", "b.png,t9")))

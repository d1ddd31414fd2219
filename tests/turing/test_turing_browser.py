"""The HTML test driven in headless Chromium: a scripted rater answers every image (reloading the page midway),
downloads the CSV, and `medgan turing analyze` reads it back with the expected counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from medgan_core.cli import main
from medgan_core.turing import build_turing_test

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RATER = 'Dr. Grey, "A"'  # a comma and quotes: the page must quote the CSV field


def chromium_path() -> str:
    path = CHROMIUM if CHROMIUM.is_file() else (Path(found) if (found := shutil.which("chromium")) else None)
    if path is None:
        pytest.fail(
            "Chromium not found at /usr/bin/chromium: install it (apt-get install -y chromium); "
            "this test needs a real headless browser"
        )
    return str(path)


def scripted_answer(position: int) -> tuple[str, int]:
    """The scripted rater's answer to the image at `position` (0-based page order): real/fake and a Likert score."""
    return ("fake" if position % 3 == 0 else "real"), position % 5 + 1


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for this module (Debian's build, driven by Playwright; never downloaded)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.mark.browser
def test_scripted_rater_completes_the_test_in_chromium(tmp_path, image_dirs, browser):
    test = build_turing_test(
        image_dirs["real"],
        [image_dirs["exp_a"], image_dirs["exp_b"]],
        tmp_path / "test",
        n_real=3,
        n_generated=4,
        seed=5,
        title="Liver CT test",
    )
    key = pd.read_csv(test.key_path, dtype=str)
    n_images = len(key)
    csv_path = tmp_path / "responses.csv"

    context = browser.new_context(accept_downloads=True)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    page.goto(test.html_path.as_uri())
    assert page.title() == "Liver CT test"
    assert page.is_disabled("#start-btn")  # no rater name, no start
    page.fill("#rater", RATER)
    page.click("#start-btn")
    for position in range(n_images):
        if position == 5:  # reload midway: name and progress come back from localStorage
            page.reload()
            assert page.is_visible("#question-screen") and not page.is_visible("#start-screen")
        progress = page.inner_text("#progress")
        assert progress.startswith(f"Image {position + 1} of {n_images}")
        assert f"Section {key.section_number[position]} of 2" in progress
        assert page.is_disabled("#next-btn")  # no skipping
        answer, likert = scripted_answer(position)
        page.click(f"#answer-{answer}")
        assert page.is_disabled("#next-btn")  # the Likert score is required too
        page.check(f"input[name=likert][value='{likert}']")
        assert page.is_enabled("#next-btn")
        page.click("#next-btn")
    assert page.is_visible("#done-screen")
    with page.expect_download() as download_info:
        page.click("#download-btn")
    download_info.value.save_as(csv_path)
    assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
    context.close()

    responses = pd.read_csv(csv_path, dtype=str)
    assert list(responses.columns) == ["rater", "image", "answer", "likert", "section"]
    assert responses.image.tolist() == key.image.tolist()
    assert set(responses.rater) == {RATER}

    expected = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
    for position, truth in enumerate(key.truth):
        answer, _ = scripted_answer(position)
        cell = {("real", "real"): "tp", ("real", "fake"): "fn", ("generated", "real"): "fp"}.get((truth, answer), "tn")
        expected[cell] += 1
    result = CliRunner().invoke(main, ["turing", "analyze", str(csv_path), "--key", str(test.key_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (rater,) = report["per_rater"]
    assert rater["rater"] == RATER
    assert {k: rater[k] for k in expected} == expected
    likert_n = {truth: report["likert"][truth]["n"] for truth in ("real", "generated")}
    assert likert_n == {"real": 6, "generated": 8}
    real_scores = [scripted_answer(p)[1] for p, t in enumerate(key.truth) if t == "real"]
    assert report["likert"]["real"]["mean"] == pytest.approx(sum(real_scores) / len(real_scores))
    assert sorted(s["section"] for s in report["sections"]) == ["exp_a", "exp_b"]


@pytest.mark.browser
def test_without_likert_only_real_or_fake_is_asked(tmp_path, image_dirs, browser):
    test = build_turing_test(
        image_dirs["real"], [image_dirs["exp_a"]], tmp_path / "test", n_real=2, n_generated=2, seed=1, likert=False
    )
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(test.html_path.as_uri())
    page.fill("#rater", "r1")
    page.click("#start-btn")
    assert not page.is_visible("input[name=likert]")
    for _ in range(4):
        assert page.is_disabled("#next-btn")
        page.click("#answer-real")
        page.click("#next-btn")
    with page.expect_download() as download_info:
        page.click("#download-btn")
    csv_path = tmp_path / "r1.csv"
    download_info.value.save_as(csv_path)
    context.close()
    responses = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    assert responses.likert.tolist() == [""] * 4
    result = CliRunner().invoke(main, ["turing", "analyze", str(csv_path), "--key", str(test.key_path), "--json"])
    assert result.exit_code == 0, result.output
    (rater,) = json.loads(result.output)["per_rater"]
    assert (rater["tp"], rater["fn"], rater["fp"], rater["tn"]) == (2, 0, 2, 0)

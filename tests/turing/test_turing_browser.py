"""The HTML test driven in headless Chromium through its own controls: a scripted rater answers every image
(reloading the page midway), downloads the CSV, and `medgan turing analyze` reads it back with the expected counts;
the page without JavaScript, a second tab, non-ASCII rater names, the full-size view, the per-rater order, the
Real/Likert conflict warning and a browser that blocks storage."""

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
EXPORT_COLUMNS = ["rater", "image", "answer", "likert", "section", "position", "order_seed", "test_id", "answered_at"]


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
    assert list(responses.columns) == EXPORT_COLUMNS
    assert responses.image.tolist() == key.image.tolist()  # the paper's fixed order: the key's
    assert responses.position.tolist() == [str(p) for p in range(1, n_images + 1)]
    assert responses.section.tolist() == key.section_number.tolist()
    assert set(responses.rater) == {RATER} and set(responses.test_id) == {test.test_id}
    assert responses.order_seed.isna().all()
    times = pd.to_datetime(responses.answered_at, format="ISO8601", utc=True)
    assert times.is_monotonic_increasing and times.notna().all()

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


def answer_images(page, count: int, answer: str = "real", likert: int | None = 3) -> None:
    """Answer the next `count` images through the page's buttons."""
    for _ in range(count):
        page.click(f"#answer-{answer}")
        if likert is not None:
            page.check(f"input[name=likert][value='{likert}']")
        page.click("#next-btn")


def download_answers(page, path: Path) -> str:
    """Click the page's download button, save the CSV at `path`; returns the file name the page suggested."""
    with page.expect_download() as download_info:
        page.click("#download-btn")
    download_info.value.save_as(path)
    return download_info.value.suggested_filename


def fnv1a_32(text: str) -> str:
    """32-bit FNV-1a of the UTF-8 bytes (the published constants), as the page's file-name tag."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"


def small_test(tmp_path, image_dirs, **options):
    options = {"n_real": 2, "n_generated": 2, "seed": 3} | options
    return build_turing_test(image_dirs["real"], [image_dirs["exp_a"]], tmp_path / "test", **options)


@pytest.mark.browser
def test_without_javascript_the_page_says_what_to_do(tmp_path, image_dirs, browser):
    test = small_test(tmp_path, image_dirs, title="Brain <MRI> test")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(test.html_path.as_uri())
    assert page.inner_text("h1") == "Brain <MRI> test"
    note = page.inner_text("#noscript-warning")
    assert "needs JavaScript" in note and "4 images" in note
    assert not page.is_visible("#start-screen") and not page.is_visible("#start-btn")
    assert "You will see" not in page.inner_text("body")  # no sentence with a missing count
    context.close()
    context = browser.new_context()
    page = context.new_page()
    page.goto(test.html_path.as_uri())
    assert page.is_visible("#start-btn") and not page.is_visible("#noscript-warning")
    assert "You will see 4 images" in page.inner_text("#start-screen")
    context.close()


@pytest.mark.browser
def test_a_second_tab_is_detected_and_never_overwrites_saved_answers(tmp_path, image_dirs, browser):
    test = small_test(tmp_path, image_dirs, n_real=3, n_generated=3)
    key = pd.read_csv(test.key_path, dtype=str)
    context = browser.new_context(accept_downloads=True)
    first = context.new_page()
    first.goto(test.html_path.as_uri())
    first.fill("#rater", "ann")
    first.click("#start-btn")
    answer_images(first, 3, "real", 4)

    second = context.new_page()  # the same test opened again while the first tab is alive
    second.goto(test.html_path.as_uri())
    assert second.is_visible("#tab-screen") and "already open in another tab" in second.inner_text("#tab-message")
    assert not second.is_visible("#start-screen") and not second.is_visible("#question-screen")
    answer_images(first, 1, "fake", 2)  # the first tab goes on undisturbed
    assert first.inner_text("#progress").startswith("Image 5 of 6")

    second.click("#take-over-btn")  # the rater moves to the second tab: it continues from the saved progress
    assert second.inner_text("#progress").startswith("Image 5 of 6")
    first.wait_for_selector("#tab-screen", state="visible", timeout=5000)  # the first tab pauses
    assert "paused" in first.inner_text("#tab-message") and not first.is_visible("#question-screen")
    answer_images(second, 2, "fake", 1)
    assert second.is_visible("#done-screen")

    first.click("#take-over-btn")  # and back: the first tab shows the second tab's finished test
    assert first.is_visible("#done-screen")
    second.wait_for_selector("#tab-screen", state="visible", timeout=5000)
    csv_path = tmp_path / "ann.csv"
    download_answers(first, csv_path)
    first.close()  # closing the owner frees the test at once for a new tab
    third = context.new_page()
    third.goto(test.html_path.as_uri())
    assert third.is_visible("#done-screen") and not third.is_visible("#tab-screen")
    context.close()

    responses = pd.read_csv(csv_path, dtype=str)
    assert responses.image.tolist() == key.image.tolist()
    assert responses.answer.tolist() == ["real"] * 3 + ["fake"] * 3
    assert responses.likert.tolist() == ["4", "4", "4", "2", "1", "1"]


@pytest.mark.browser
def test_non_ascii_rater_names_get_distinct_safe_download_names(tmp_path, image_dirs, browser):
    test = small_test(tmp_path, image_dirs, n_real=1, n_generated=1, likert=False)
    names = {}
    raters = ["张伟", "李娜", "a/b", "a_b"]  # the last two differ only in a character a file name cannot keep
    for k, rater in enumerate(raters):
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.goto(test.html_path.as_uri())
        page.fill("#rater", rater)
        page.click("#start-btn")
        answer_images(page, 2, "real", None)
        names[rater] = download_answers(page, tmp_path / f"r{k}.csv")
        context.close()
        assert pd.read_csv(tmp_path / f"r{k}.csv", dtype=str).rater.tolist() == [rater] * 2
    assert len(set(names.values())) == len(raters)
    assert names["张伟"] == f"turing_responses_{test.test_id}_张伟_{fnv1a_32('张伟')}.csv"
    assert names["a/b"] == f"turing_responses_{test.test_id}_a_b_{fnv1a_32('a/b')}.csv"
    assert all("/" not in name and "\\" not in name for name in names.values())
    result = CliRunner().invoke(
        main, ["turing", "analyze", *[str(tmp_path / f"r{k}.csv") for k in range(4)], "--key", str(test.key_path)]
    )
    assert result.exit_code == 0, result.output
    assert "张伟" in result.output and "李娜" in result.output


@pytest.mark.browser
def test_full_size_view_shows_every_pixel_and_zooms(tmp_path, image_dirs, browser):
    test = small_test(tmp_path, image_dirs)
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.goto(test.html_path.as_uri())
    page.fill("#rater", "r1")
    page.click("#start-btn")
    assert not page.is_visible("#zoom-view")
    page.click("#zoom-btn")
    page.wait_for_function("document.getElementById('zoom-level').textContent !== ''")
    assert page.eval_on_selector("#zoom-image", "e => e.src") == page.eval_on_selector("#image", "e => e.src")
    assert page.eval_on_selector("#zoom-image", "e => [e.naturalWidth, e.naturalHeight]") == [16, 16]
    width = page.eval_on_selector("#zoom-image", "e => e.getBoundingClientRect().width")
    assert width == 16 * 16  # the largest whole-pixel zoom that fits, at most 16x
    page.click("#zoom-actual")
    assert page.eval_on_selector("#zoom-image", "e => e.getBoundingClientRect().width") == 16
    assert "full resolution" in page.inner_text("#zoom-level")
    page.click("#zoom-in")
    assert page.eval_on_selector("#zoom-image", "e => e.getBoundingClientRect().width") == 32
    assert page.eval_on_selector("#zoom-image", "e => getComputedStyle(e).imageRendering") == "pixelated"
    page.keyboard.press("Escape")
    assert not page.is_visible("#zoom-view")
    page.click("#image")  # clicking the image opens the view too
    assert page.is_visible("#zoom-view")
    page.click("#zoom-close")
    answer_images(page, 4)
    assert page.is_visible("#done-screen")
    context.close()


@pytest.mark.browser
def test_per_rater_shuffled_order_is_seeded_recorded_and_reproducible(tmp_path, image_dirs, browser):
    from medgan_core.turing.order import shuffled_order

    test = build_turing_test(
        image_dirs["real"],
        [image_dirs["exp_a"], image_dirs["exp_b"]],
        tmp_path / "test",
        n_real=2,
        n_generated=3,
        seed=4,
        shuffle_per_rater=True,
    )
    key = pd.read_csv(test.key_path, dtype=str)
    seeds, orders = [], []
    for rater in ("ann", "bob"):
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.goto(test.html_path.as_uri())
        page.fill("#rater", rater)
        page.click("#start-btn")
        shown_sections = []
        for position in range(len(key)):
            if position == 4:
                page.reload()  # the rater's order survives a reload
            shown_sections.append(page.inner_text("#progress").split("Section ")[1])
            answer_images(page, 1, "real" if position % 2 else "fake", 3)
        csv_path = tmp_path / f"{rater}.csv"
        download_answers(page, csv_path)
        context.close()
        assert shown_sections == ["1 of 2"] * 5 + ["2 of 2"] * 5
        responses = pd.read_csv(csv_path, dtype=str)
        assert responses.position.tolist() == [str(p) for p in range(1, 11)]
        (seed,) = set(responses.order_seed)
        expected = [key.image[i] for i in shuffled_order(key.section_number.tolist(), int(seed))]
        assert responses.image.tolist() == expected  # the Python reproduction of the page's shuffle
        assert sorted(responses.image) == sorted(key.image)
        seeds.append(seed)
        orders.append(responses.image.tolist())
    assert seeds[0] != seeds[1] and orders[0] != orders[1]
    result = CliRunner().invoke(
        main, ["turing", "analyze", str(tmp_path / "ann.csv"), str(tmp_path / "bob.csv"), "--key", str(test.key_path)]
    )
    assert result.exit_code == 0, result.output  # sections and test id agree with the key


@pytest.mark.browser
def test_real_with_likert_1_or_fake_with_likert_5_warns(tmp_path, image_dirs, browser):
    test = small_test(tmp_path, image_dirs)
    context = browser.new_context()
    page = context.new_page()
    page.goto(test.html_path.as_uri())
    page.fill("#rater", "r1")
    page.click("#start-btn")
    page.click("#answer-real")
    page.check("input[name=likert][value='1']")
    assert page.is_visible("#conflict-warning") and "Real" in page.inner_text("#conflict-warning")
    assert page.is_enabled("#next-btn")  # a warning, not a block: the rater may mean it
    page.check("input[name=likert][value='3']")
    assert not page.is_visible("#conflict-warning")
    page.click("#answer-fake")
    page.check("input[name=likert][value='5']")
    assert page.is_visible("#conflict-warning") and "Fake" in page.inner_text("#conflict-warning")
    page.click("#answer-real")  # Real with 5 agrees
    assert not page.is_visible("#conflict-warning")
    page.click("#next-btn")
    assert not page.is_visible("#conflict-warning")  # the next image starts clean
    context.close()


@pytest.mark.browser
def test_storage_warning_is_on_the_first_screen(tmp_path, image_dirs, browser):
    test = small_test(tmp_path, image_dirs)
    context = browser.new_context()
    page = context.new_page()
    page.goto(test.html_path.as_uri())
    assert page.is_visible("#start-screen") and not page.is_visible("#storage-warning")
    context.close()

    context = browser.new_context(accept_downloads=True)
    # what a browser with site data blocked does: any use of localStorage throws a SecurityError
    context.add_init_script(
        "Object.defineProperty(window, 'localStorage', "
        "{get() { throw new DOMException('blocked', 'SecurityError'); }});"
    )
    page = context.new_page()
    page.goto(test.html_path.as_uri())
    assert page.is_visible("#storage-warning") and page.is_visible("#start-screen")  # before Start
    assert "download your answers" in page.inner_text("#storage-warning")
    page.fill("#rater", "r1")
    page.click("#start-btn")
    assert page.is_visible("#storage-warning")
    answer_images(page, 4)
    download_answers(page, tmp_path / "r1.csv")
    context.close()
    assert len(pd.read_csv(tmp_path / "r1.csv")) == 4  # the test still works from memory


@pytest.mark.browser
def test_python_reproduces_the_page_shuffle_for_many_seeds(tmp_path, image_dirs, browser):
    from medgan_core.turing.order import shuffled_order

    test = build_turing_test(
        image_dirs["real"],
        [image_dirs["exp_a"], image_dirs["exp_b"]],
        tmp_path / "test",
        n_real=3,
        n_generated=4,
        shuffle_per_rater=True,
    )
    sections = pd.read_csv(test.key_path, dtype=str).section_number.tolist()
    seeds = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, *range(12345, 2**32, 2**32 // 200)]
    context = browser.new_context()
    page = context.new_page()
    page.goto(test.html_path.as_uri())
    in_page = page.evaluate("seeds => seeds.map((seed) => shuffledOrder(seed))", seeds)
    context.close()
    assert in_page == [shuffled_order(sections, seed) for seed in seeds]
    assert len({tuple(order) for order in in_page}) > 150  # the seed matters
    for order in in_page:  # a permutation that keeps each section together
        assert sorted(order) == list(range(len(sections)))
        shown = [sections[i] for i in order]
        assert shown == sorted(shown, key=shown.index)

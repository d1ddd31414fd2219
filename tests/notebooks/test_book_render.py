"""The built book in headless Chromium: every chapter page renders with its figures, offline.

Debian's Chromium is driven by Playwright (never `playwright install`); a missing browser fails the test. Every
request that leaves the local files is recorded and fails the test, so the HTML must not need a CDN.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from medgan_core.book.build import CHAPTERS

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# figures each chapter shows under smoke parameters, at least (plots and image grids)
MIN_FIGURES = {
    "01_data": 5,
    "02_training": 4,
    "03_ablation": 1,
    "04_public_datasets": 1,
    "05_fid_vs_humans": 2,
    "06_clinician_turing_test": 2,
}
PAGES = [
    "book/intro.html",
    "book/methods.html",
    "book/rerun_dgx.html",
    "book/getting_data.html",
    "book/references.html",
] + [f"book/_generated/{c}.html" for c in CHAPTERS]


def chromium_path() -> str:
    path = CHROMIUM if CHROMIUM.is_file() else (Path(found) if (found := shutil.which("chromium")) else None)
    if path is None:
        pytest.fail("Chromium not found at /usr/bin/chromium: apt-get install -y chromium (the test needs it)")
    return str(path)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def test_built_html_has_no_external_scripts_or_stylesheets(smoke_book):
    html_dir = smoke_book / "_build" / "html"
    external = re.compile(r"<(script|link)\b[^>]*\b(src|href)=[\"'](https?:)?//", re.IGNORECASE)
    offenders = {}
    for page in html_dir.rglob("*.html"):
        found = external.findall(page.read_text(encoding="utf-8"))
        if found:
            offenders[str(page.relative_to(html_dir))] = len(found)
    assert not offenders, f"pages loading scripts or stylesheets from the network: {offenders}"
    assert (html_dir / "_static" / "mathjax" / "MathJax.js").is_file()


@pytest.mark.slow
@pytest.mark.browser
def test_every_page_renders_with_its_figures_offline(smoke_book, browser, tmp_path):
    html_dir = smoke_book / "_build" / "html"
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    remote: list[str] = []

    def refuse_network(route):
        remote.append(route.request.url)
        route.abort()

    context.route(re.compile(r"^(https?|wss?)://"), refuse_network)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for relative in PAGES:
        path = html_dir / relative
        assert path.is_file(), f"page missing from the build: {relative}"
        page.goto(path.as_uri(), wait_until="load")
        images = page.eval_on_selector_all(
            "article img", "els => els.map(e => ({src: e.getAttribute('src'), w: e.naturalWidth, done: e.complete}))"
        )
        broken = [image["src"] for image in images if not image["done"] or image["w"] == 0]
        assert not broken, f"{relative}: images that did not load: {broken}"
        chapter = Path(relative).stem
        if chapter in MIN_FIGURES:
            assert len(images) >= MIN_FIGURES[chapter], (
                f"{relative}: {len(images)} figures, expected >= {MIN_FIGURES[chapter]}"
            )
            assert page.locator("article h1").count() >= 1
        page.screenshot(path=str(tmp_path / f"{relative.replace('/', '_')}.png"), full_page=False)
    # equations are typeset by the local MathJax (MathJax 2 wraps each in an element of class MathJax)
    page.goto((html_dir / "book" / "methods.html").as_uri(), wait_until="load")
    page.wait_for_selector(".MathJax, .MathJax_CHTML, .MathJax_Display", state="attached", timeout=30_000)
    context.close()
    assert not remote, f"pages tried to reach the network: {sorted(set(remote))[:10]}"
    # sphinx-book-theme declares sphinx-thebe's constant twice on every page (a known theme quirk, harmless:
    # thebe is disabled); any other script error fails the test
    errors = [e for e in errors if "THEBE_JS_URL" not in e]
    assert not errors, f"JavaScript errors: {errors[:5]}"
    assert len(list(tmp_path.glob("*.png"))) == len(PAGES)

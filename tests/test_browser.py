"""The course in a real browser: JupyterLab on localhost, driven through headless Chromium.

Opens chapter 02 (with quick=True injected), runs it with Run All Cells, moves a
playground slider and checks that the plot was redrawn and no widget shows an
error. Needs Debian's Chromium (`apt-get install -y chromium`, see README); without
it the test is skipped here, and fails in CI (CI=true), where it must run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmtrain.course import browser

from .conftest import CHAPTERS, ROOT, require

CHAPTER = CHAPTERS / "02_gradient_descent.ipynb"
PLAYGROUND = "Descend a landscape"      # the title shown in the playground's output


@pytest.fixture(scope="module")
def lab_notebook(tmp_path_factory):
    require(browser.missing_requirements(), "CI must run the browser test")
    root = tmp_path_factory.mktemp("lab")
    return root, browser.prepare_quick(CHAPTER, root)


@pytest.mark.slow
def test_chapter_runs_in_jupyterlab_and_its_slider_redraws_the_plot(lab_notebook, tmp_path):
    root, nb = lab_notebook
    shots = Path(os.environ.get("LLMTRAIN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with browser.lab_page(root) as (server, page):
        browser.open_notebook(server, page, nb.name)
        browser.run_all(page)
        assert browser.error_outputs(page) == [], "a cell or widget failed in JupyterLab"
        cell = browser.cell_with(page, PLAYGROUND)
        cell.scroll_into_view_if_needed()
        before = browser.plot_source(cell)
        assert before and browser.ink(before) > 0.01, "the playground shows no plot after Run All"
        verdict = cell.locator(".jp-OutputArea", has_text="Verdict").last.inner_text()

        browser.nudge_slider(cell, "learning rate")
        after = browser.wait_for_new_plot(page, cell, before)
        browser.wait_idle(page)
        page.screenshot(path=str(shots / "browser_02_after_slider.png"))
        assert browser.error_outputs(page) == [], "a widget failed after the slider moved"
        assert browser.playground_messages(cell) == [], "the playground shows a warning"
        new_verdict = cell.locator(".jp-OutputArea", has_text="Verdict").last.inner_text()
        assert new_verdict != verdict, "the playground's text did not follow the slider"
    assert browser.ink(after) > 0.01, "the redrawn plot is blank"
    assert after != before


def test_chromium_is_found_where_the_readme_installs_it():
    path = browser.chromium_executable()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium, but it is not installed: .ci/run's "
                        "apt-get install -y chromium failed (see the top of the CI log)")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    assert Path(path).is_file() and os.access(path, os.X_OK), f"{path} is not an executable"
    assert "apt-get install -y chromium" in (ROOT / "README.md").read_text()

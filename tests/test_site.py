"""The course as a website: ``python -m llmtrain site`` (Jupyter Book 2 and the course's theme).

The fast tests check the pieces (the home page made from the README, the MyST
config, the pinned browser packages, the output folder, the build log) with no
Node.js. The slow ones build the whole site from the committed notebooks, check
every page and link on disk, then open a chapter in headless Chromium: its title,
a plot that loaded, its playground drawn from the saved widget state, no script
error and no missing file. They need Node.js 18+, the npm registry (once: the
two browser packages are cached) and Chromium; without them they are skipped
here, and fail in CI (CI=true), where they must run.
"""

from __future__ import annotations

import html as html_lib
import io
import json
import os
import re
import subprocess
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmtrain.course import browser, site
from llmtrain.course.cli import main as cli_main
from llmtrain.course.runner import chapters

from .conftest import CHAPTERS, ROOT, require

CHAPTER = "02_gradient_descent.ipynb"     # the chapter opened in the browser
PLAYGROUND_TITLE = "Descend a landscape"


def _title(nb: Path) -> str:
    """The notebook's first heading, which MyST makes the page's title."""
    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            m = re.search(r"^# (.+)$", "".join(cell["source"]), re.M)
            if m:
                return m.group(1).strip()
    raise AssertionError(f"{nb.name} has no title")


def _plain(text: str) -> str:
    """A title as text: no markup, straight quotes (MyST makes quotes typographic)."""
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", text))
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "").strip()


# ---------------------------------------------------------------- the pieces


def test_home_page_is_the_readme_intro_commands_and_chapter_table():
    readme = (ROOT / "README.md").read_text()
    names = [c.name for c in chapters()]
    page, images = site.home_page(readme, names)
    assert page.startswith('---\ntitle: "How LLMs Are Trained"\n---')
    assert "## Start" in page and "## The chapters" in page and "## Troubleshooting" not in page
    assert "pip install -r requirements.txt" in page
    for name in names:                          # each chapter links to its page, not to GitHub
        assert f"]({name})" in page, name
    assert "](chapters/" not in page
    assert "](CLAIMS.md)" in page
    assert "badge_logo.svg" not in page          # no remote picture: MyST would download it
    for link in re.findall(r"(?<!!)\[[^\]]*\]\(([^)#]+)", page):
        assert link in names + ["CLAIMS.md"] or link.startswith("https://"), link
    assert images and all((ROOT / i).is_file() for i in images)   # README's screenshots


def test_home_page_needs_the_readme_sections():
    with pytest.raises(site.SiteError, match="## The chapters"):
        site.home_page("# T\n\n[![Binder](x)](https://mybinder.org/v2/gh/a/b/main)\n"
                       "## Start\n\nx\n", [])
    with pytest.raises(site.SiteError, match="Binder badge"):
        site.repository("# T\n\nno badge\n")


def test_myst_config_lists_home_chapters_and_claims_with_binder():
    owner, name, branch = site.repository()
    config = json.loads(site.myst_config("T", ["01_a.ipynb", "02_b.ipynb"], owner, name, branch,
                                         Path("/theme")))
    toc = [e["file"] for e in config["project"]["toc"]]
    assert toc == ["index.md", "01_a.ipynb", "02_b.ipynb", "CLAIMS.md"]
    options = config["site"]["options"]
    assert options["binder_url"] == f"https://mybinder.org/v2/gh/{owner}/{name}/{branch}"
    assert config["site"]["template"] == "/theme"
    # the theme declares every option it is given (MyST checks them against template.yml)
    declared = re.findall(r"id: (\w+)", (site.THEME / "template.yml").read_text())
    assert set(options) <= set(declared)


def test_build_log_failures_and_warnings_are_found():
    log = ("📖 Built 01.ipynb in 95 ms.\n⚠️ index.md a warning\n"
           "⛔️ CLAIMS.md Link has no URL:\nerror rendering /x: TypeError\n")
    failures, warnings = site.problems_in_log(log)
    assert len(failures) == 2 and "Link has no URL" in failures[0]
    assert warnings == ["⚠️ index.md a warning"]
    assert site.problems_in_log("📚 Built 19 pages for project in 3 s.\n") == ([], [])


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_web_package_is_checked_cached_and_unpacked(tmp_path, monkeypatch):
    data = _tarball({"package/dist/embed.js": b"js", "package/dist/embed.js.map": b"map",
                     "package/dist/fonts/a.woff2": b"font", "package/README.md": b"doc",
                     "package/dist/../../evil": b"x"})
    pkg = site.WebPackage("@scope/thing", "1.0.0", site._sha512(data), keep="package/dist/",
                          skip=(".map",), folder="thing")
    calls = []
    monkeypatch.setattr(site, "_download", lambda p, folder: calls.append(p) or data)
    cached = site.web_package(pkg, tmp_path / "cache")
    assert cached == tmp_path / "cache" / "thing-1.0.0.tgz" and cached.read_bytes() == data
    assert site.web_package(pkg, tmp_path / "cache") == cached and len(calls) == 1   # cached
    public = tmp_path / "public"
    assert site.unpack_web_package(pkg, cached, public) == 2
    assert sorted(p.relative_to(public).as_posix() for p in public.rglob("*") if p.is_file()) \
        == ["thing/embed.js", "thing/fonts/a.woff2"]
    assert not (tmp_path / "evil").exists()


def test_without_a_writable_cache_the_package_is_kept_for_one_build(tmp_path, monkeypatch):
    data = _tarball({"package/dist/embed.js": b"js"})
    pkg = site.WebPackage("thing", "1.0.0", site._sha512(data), keep="package/dist/")
    monkeypatch.setattr(site, "_download", lambda p, folder: data)
    (tmp_path / "home").write_text("a file where the cache folder would go")
    path = site.web_package(pkg, tmp_path / "home" / "cache")
    assert path.read_bytes() == data and tmp_path not in path.parents


def test_a_changed_web_package_is_refused_and_not_cached(tmp_path, monkeypatch):
    pkg = site.WebPackage("thing", "1.0.0", "sha512-notthis", keep="package/")
    monkeypatch.setattr(site, "_download", lambda p, folder: b"something else")
    with pytest.raises(site.SiteError, match="does not match its pinned sha512"):
        site.web_package(pkg, tmp_path)
    assert list(tmp_path.iterdir()) == []

    def offline(p, folder):
        raise OSError("no route to host")
    monkeypatch.setattr(site, "_download", offline)
    with pytest.raises(site.SiteError, match="needs it once"):
        site.web_package(pkg, tmp_path)

    def npm_hangs(p, folder):
        raise subprocess.TimeoutExpired("npm pack", 300)
    monkeypatch.setattr(site, "_download", npm_hangs)
    with pytest.raises(site.SiteError, match="needs it once"):
        site.web_package(pkg, tmp_path)


def test_the_pins_are_the_packages_the_theme_loads():
    server = (site.THEME / "server.js").read_text()
    folders = {p.folder for p in site.WEB_PACKAGES}
    assert folders == {"katex", "widgets"}
    assert "/widgets/embed.js" in server and "/katex/katex.min.css" in server
    assert all(re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", p.integrity) for p in site.WEB_PACKAGES)


def test_output_folder_is_checked_before_anything_is_written(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(site.SiteError, match="not empty"):
        site.build_site(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(site.SiteError, match="is a file"):
        site.build_site(tmp_path / "notes.txt")
    for inside in (ROOT, ROOT / "chapters", ROOT / "assets" / "site"):
        with pytest.raises(site.SiteError, match="course's own files"):
            site.build_site(inside)


def test_without_node_the_fix_is_named_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(site, "node_version", lambda node=None: None)
    assert "apt-get install -y nodejs" in site.node_problem()
    with pytest.raises(SystemExit, match="cannot build the website: Node.js is not installed"):
        cli_main(["site", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(site, "node_version", lambda node=None: (16, 20, 0))
    assert "16.20.0 is not one Jupyter Book runs on" in site.node_problem()
    monkeypatch.setattr(site, "node_version", lambda node=None: (21, 1, 0))
    assert "install Node.js 18, 20, or 22" in site.node_problem()


# ------------------------------------------------------------- the whole site


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.srcs = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag in ("img", "script", "link") and (attrs.get("src") or attrs.get("href")):
            self.srcs.append(attrs.get("src") or attrs.get("href"))


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    require(site.node_problem(), "CI must build the website")
    out = tmp_path_factory.mktemp("site") / "course"
    try:
        report = site.build_site(out, log=lambda *a: None)
    except site.SiteError as e:
        if "could not download" in str(e) and not os.environ.get("CI"):
            pytest.skip(str(e))
        raise
    return out, report


@pytest.mark.slow
def test_every_chapter_has_its_page_with_outputs_and_working_links(built_site):
    out, report = built_site
    notebooks = chapters()
    assert len(report.pages) == len(notebooks) + 2           # home, chapters, claims
    assert report.warnings == [], report.warnings            # e.g. a link MyST cannot resolve
    assert (out / site.MARKER).exists() and (out / "index.html").exists()
    pages = [out / "index.html"] + [out / slug / "index.html" for slug in report.pages[1:]]
    for nb, slug in zip(notebooks, report.pages[1:]):
        html = (out / slug / "index.html").read_text()
        h1 = re.search(r'<h1 class="title">(.*?)</h1>', html)
        assert h1 and _plain(h1.group(1)) == _plain(_title(nb)), nb.name
        assert 'class="output image"' in html, f"{nb.name}: no plot on its page"
        assert "application/vnd.jupyter.widget-state+json" in html, f"{nb.name}: no widget state"
        assert f"urlpath=lab%2Ftree%2Fchapters%2F{nb.name}" in html, f"{nb.name}: no Binder button"
        assert 'class="output error"' not in html, f"{nb.name} shows a traceback"
    for path in pages:
        links = _Links()
        links.feed(path.read_text())
        for ref in links.hrefs + links.srcs:
            if ref.startswith(("http", "#", "mailto:")):
                continue
            target = ref.split("#")[0]
            file = out / target.lstrip("/")
            assert file.is_file() or (file / "index.html").is_file(), f"{path}: {ref} is missing"
            if "#" in ref and target.rstrip("/") == "/claims":    # a claim's anchor exists
                anchor = ref.split("#")[1]
                assert f'id="{anchor}"' in (out / "claims" / "index.html").read_text(), ref


@pytest.mark.slow
def test_a_chapter_page_in_the_browser_shows_its_title_plots_and_playground(built_site, tmp_path):
    require(browser.missing_requirements(), "CI must open the website in a browser")
    out, report = built_site
    nb = CHAPTERS / CHAPTER
    slug = report.pages[1 + [c.name for c in chapters()].index(CHAPTER)]
    shots = Path(os.environ.get("LLMTRAIN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with browser.site_page(out) as (url, page, errors):
        page.goto(url(f"/{slug}/"))
        page.wait_for_load_state("networkidle")
        assert _plain(_title(nb)) in _plain(page.title())
        assert _plain(page.locator("h1.title").inner_text()) == _plain(_title(nb))
        plots = page.locator(".output.image img")
        assert plots.count() >= 1
        plots.first.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 100",
                               arg=plots.first.element_handle(), timeout=20_000)
        # the playground, drawn by the widgets' static renderer from the saved state
        playground = page.locator(".output.widget", has_text=PLAYGROUND_TITLE).first
        playground.wait_for(timeout=30_000)
        assert playground.locator(".widget-slider").count() >= 1
        assert playground.locator("img").count() >= 1, "the playground shows no plot"
        assert "Error displaying widget" not in page.inner_text("body")
        playground.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / "site_02_chapter.png"))
        if os.environ.get("LLMTRAIN_SCREENSHOTS"):          # for the README: a smaller file
            browser.shrink_png(shots / "site_02_chapter.png")
        assert errors == [], errors
        # the claims link leads to the claim on the claims page
        claim = page.locator("a[href*='/claims/#c']").first
        target = claim.get_attribute("href").split("#")[1]
        claim.click()
        page.wait_for_load_state("networkidle")
        assert page.locator(f"[id='{target}']").count() == 1
        page.goto(url("/"))
        assert page.locator("table a[href]").count() >= len(chapters())
        # search: "/" focuses the box, results list sections, Enter opens the first one
        page.keyboard.press("/")
        page.keyboard.type("perplexity bits")
        first = page.locator("#search-results li a").first
        first.wait_for(timeout=10_000)
        assert "Next-token prediction" in first.inner_text()
        assert page.locator("#search-results mark").count() >= 2
        target = first.get_attribute("href")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**{target}")
        assert page.locator(f"[id='{target.split('#')[1]}']").count() == 1
        page.locator("#search").fill("zzqqxx nothing")
        page.locator("#search-results .none").wait_for(timeout=10_000)
        # on a phone the chapter list starts folded, so the chapter is on the first screen
        assert page.locator("details.chapters").get_attribute("open") is not None
        page.set_viewport_size({"width": 420, "height": 900})
        page.goto(url(f"/{slug}/"))
        assert page.locator("details.chapters").get_attribute("open") is None
        assert page.locator("h1.title").bounding_box()["y"] < 900
        assert errors == [], errors


@pytest.mark.slow
def test_a_site_served_under_a_path_links_under_that_path(built_site, tmp_path):
    out = tmp_path / "course"
    site.build_site(out, [CHAPTERS / "00_pipeline.ipynb"], base_url="/course/", log=lambda *a: None)
    links = _Links()
    links.feed((out / "index.html").read_text())
    links.feed(next(out.glob("*/index.html")).read_text())
    local = [r for r in links.hrefs + links.srcs if not r.startswith(("http", "#"))]
    assert local and all(r.startswith("/course/") for r in local), local


@pytest.mark.slow
def test_every_chapters_playgrounds_are_drawn_from_their_saved_state(built_site):
    """Each chapter page opened in Chromium: every widget output is drawn by the static
    renderer (so the notebook saved the state of every widget it shows), none fails."""
    require(browser.missing_requirements(), "CI must open the website in a browser")
    out, report = built_site
    with browser.site_page(out) as (url, page, errors):
        for nb, slug in zip(chapters(), report.pages[1:]):
            page.goto(url(f"/{slug}/"))
            page.wait_for_load_state("networkidle")
            views = page.locator(".output.widget")
            assert views.count() >= 1, f"{nb.name}: no playground on its page"
            undrawn = page.evaluate("""() => [...document.querySelectorAll('.output.widget')]
                .filter(w => !w.querySelector('.jupyter-widgets'))
                .map(w => w.innerText.slice(0, 120))""")
            assert undrawn == [], f"{nb.name}: widgets not drawn: {undrawn}"
            assert "Error displaying widget" not in page.inner_text("body"), nb.name
        assert errors == [], errors

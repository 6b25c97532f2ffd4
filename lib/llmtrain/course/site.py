"""``python -m llmtrain site OUT/``: the executed course as a static website (Jupyter Book 2).

The website is built from the committed notebooks as they are, without running
them: every chapter with its outputs, plots and playgrounds (shown in their last
state, from the widget state saved in each notebook), a "Launch on Binder" and a
"Download the notebook" button per page, and a home page made from the README's
introduction, its two commands and its chapter table.

How: the chapters, ``CLAIMS.md`` and a generated ``index.md`` are copied into a
temporary MyST project; ``jupyter-book build --html`` (Jupyter Book 2, the
``jupyter-book`` package in requirements.txt, which runs MyST on Node.js) parses
them, extracts their outputs and renders each page through the course's own site
template, ``site_theme/`` (one dependency-free Node.js server, ``server.js``).
MyST's stock themes are downloaded from the internet at build time, and the
course builds offline; the theme's two browser packages, KaTeX's style sheet and
fonts and the Jupyter widgets' static renderer, come from the npm registry as
pinned tarballs checked against their sha512, and are cached (``~/.cache/llmtrain``).

Node.js 18 or newer must be installed from the system's packages (Debian:
``apt-get install nodejs``); this module never downloads Node.js (Jupyter Book
would offer to) and says what to install instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .paths import CHAPTERS_DIR, ROOT
from .runner import chapters as all_chapters

THEME = Path(__file__).with_name("site_theme")
MARKER = ".llmtrain-site"          # written into a built site: `site` may replace that folder
NODE_MIN = 18
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmtrain" / "web"


@dataclass(frozen=True)
class WebPackage:
    """A pinned npm tarball whose files the theme serves from ``public/<folder>``."""

    name: str
    version: str
    integrity: str          # the registry's sha512, checked before anything is unpacked
    keep: str               # files kept: those under this folder of the package ...
    skip: tuple = ()        # ... except names ending in these
    folder: str = ""

    @property
    def tarball(self) -> str:
        return f"{self.name.split('/')[-1]}-{self.version}.tgz"


WEB_PACKAGES = (
    # The style and fonts of the KaTeX markup that MyST writes for maths (myst uses katex 0.15).
    WebPackage("katex", "0.15.6",
               "sha512-UpzJy4yrnqnhXvRPhjEuLA4lcPn6eRngixW7Q3TJErjg3Aw2PuLFBzTkdUb89UtumxjhHTqL3a5GDGETMSwgJA==",
               keep="package/dist/", skip=(".js", ".mjs", ".map", ".ttf", ".woff", "README.md"),
               folder="katex"),
    # The Jupyter widgets' static renderer: draws each playground from its saved state.
    WebPackage("@jupyter-widgets/html-manager", "1.0.15",
               "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
               keep="package/dist/", skip=(".map", "embed-amd.js", "libembed-amd.js"),
               folder="widgets"),
)


class SiteError(RuntimeError):
    """The website cannot be built; the message says what to change."""


@dataclass
class SiteReport:
    out: Path
    pages: list[str]                   # slugs, the home page ("index") first
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Built {len(self.pages)} pages into {self.out} in {self.seconds:.0f} s.",
                 f"To read it, serve the folder (its links need a web server): "
                 f"python -m http.server -d {self.out} 8000, then open http://localhost:8000"]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# ------------------------------------------------------------------ Node.js


def node_version(node: str | None = None) -> tuple[int, int, int] | None:
    """The version of Node.js on PATH (or ``node``), or None if there is none."""
    node = node or shutil.which("node") or shutil.which("nodejs")
    if not node:
        return None
    try:
        text = subprocess.run([node, "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in m.groups()) if m else None


def node_problem() -> str | None:
    """Why Jupyter Book cannot run here, with the fix, or None if Node.js will do."""
    version = node_version()
    if version is None:
        return ("Node.js is not installed; the website needs Node.js 18 or newer from your "
                "system's packages: sudo apt-get install -y nodejs (Debian, Ubuntu), "
                "brew install node (macOS)")
    if version[0] < NODE_MIN or version[0] in (19, 21):     # Jupyter Book takes 18, 20, 22+
        return (f"Node.js {'.'.join(map(str, version))} is not one Jupyter Book runs on; "
                f"install Node.js 18, 20, or 22 or newer from your system's packages")
    try:
        import jupyter_book  # noqa: F401
    except ImportError:
        return "the jupyter-book package is not installed: pip install -r requirements.txt"
    return None


# ----------------------------------------------------------- browser files


def _sha512(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _download(pkg: WebPackage, folder: Path) -> bytes:
    """The package's tarball: through npm if it is installed (its registry and proxy
    settings apply), else straight from the registry's address."""
    npm = shutil.which("npm")
    if npm:
        done = subprocess.run([npm, "pack", f"{pkg.name}@{pkg.version}", "--silent",
                               "--pack-destination", str(folder)],
                              capture_output=True, text=True, timeout=300)
        path = folder / pkg.tarball
        if done.returncode == 0 and path.exists():
            return path.read_bytes()
    registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    url = f"{registry}/{pkg.name}/-/{pkg.tarball}"
    with urllib.request.urlopen(url, timeout=120) as resp:
        return resp.read()


def web_package(pkg: WebPackage, cache: Path = CACHE) -> Path:
    """The package's tarball in the cache, downloaded once and checked against its sha512."""
    path = cache / pkg.tarball
    if path.exists() and _sha512(path.read_bytes()) == pkg.integrity:
        return path
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:               # no writable home: keep it for this build only
        cache = Path(tempfile.mkdtemp(prefix="llmtrain-web-"))
        path = cache / pkg.tarball
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        try:
            data = _download(pkg, Path(tmp))
        except (OSError, subprocess.SubprocessError) as exc:     # offline, refused, npm hung
            raise SiteError(
                f"could not download {pkg.name}@{pkg.version} from the npm registry ({exc}); "
                f"the website needs it once (it is then kept in {cache}): connect to the "
                f"internet or to your npm registry, or copy {pkg.tarball} into {cache}") from exc
        if _sha512(data) != pkg.integrity:
            raise SiteError(f"{pkg.name}@{pkg.version} from the registry does not match its "
                            f"pinned sha512; nothing was unpacked (is a proxy changing it?)")
        partial = Path(tmp) / "partial"
        partial.write_bytes(data)
        partial.replace(path)
    return path


def unpack_web_package(pkg: WebPackage, tarball: Path, public: Path) -> int:
    """Copy the kept files of ``tarball`` into ``public/<folder>``; returns how many."""
    target = public / pkg.folder
    count = 0
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(pkg.keep):
                continue
            rel = member.name[len(pkg.keep):]
            if not rel or rel.endswith(pkg.skip) or ".." in Path(rel).parts:
                continue
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(tar.extractfile(member).read())
            count += 1
    return count


# ------------------------------------------------------------- the project


def repository(readme: str | None = None) -> tuple[str, str, str]:
    """(owner, name, branch) of the course on GitHub, read from the README's Binder badge."""
    readme = readme if readme is not None else (ROOT / "README.md").read_text()
    m = re.search(r"mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/([\w.-]+)", readme)
    if not m:
        raise SiteError("README.md has no Binder badge (mybinder.org/v2/gh/OWNER/REPO/BRANCH); "
                        "the website's Binder and source links are made from it")
    return m.group(1), m.group(2), m.group(3)


def _section(readme: str, heading: str) -> str:
    """The README's ``## heading`` section, its heading included."""
    m = re.search(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", readme, re.S | re.M)
    if not m:
        raise SiteError(f"README.md has no '## {heading}' section for the website's home page")
    return m.group(0)


def home_page(readme: str, chapters: list[str]) -> tuple[str, list[str]]:
    """The home page's MyST markdown: the README's introduction, its two commands and its
    chapter table, with links to chapters made links to their pages; and the repository's
    image files it shows (to be copied next to the page).

    Relative links to other files of the repository point at GitHub.
    """
    owner, name, branch = repository(readme)
    title, _, rest = readme.partition("\n")
    intro = rest.split("\n## ", 1)[0]
    # The Binder badge is a picture on GitHub; the page has a Binder button instead.
    intro = re.sub(r"^\[!\[Binder\]\([^)]*\)\]\([^)]*\)\s*$", "", intro, flags=re.M)
    text = "\n\n".join([intro.strip(), _section(readme, "Start").strip(),
                        _section(readme, "The chapters").strip()])
    blob = f"https://github.com/{owner}/{name}/blob/{branch}/"
    images: list[str] = []

    def relink(m: re.Match) -> str:
        bang, label, target = m.group(1), m.group(2), m.group(3)
        if re.match(r"[a-z]+:|#", target):
            # MyST would download a remote image at build time: its alt text stands in.
            return f"{label} (launch the chapters there)" if bang else m.group(0)
        path, _, anchor = target.partition("#")
        anchor = f"#{anchor}" if anchor else ""
        if path.startswith("chapters/") and Path(path).name in chapters + ["CLAIMS.md"]:
            return f"{bang}[{label}]({Path(path).name}{anchor})"
        if bang and (ROOT / path).is_file():
            images.append(path)
            return m.group(0)
        return f"{bang}[{label}]({blob}{path}{anchor})"

    text = re.sub(r"(!)\[([^\[\]]*)\]\(([^)\s]+)\)", relink, text)     # images first
    text = re.sub(r"(?<!!)()\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)", relink, text)
    front = f"---\ntitle: {json.dumps(title.lstrip('# ').strip())}\n---\n\n"
    return front + text + "\n", images


def myst_config(title: str, chapters: list[str], owner: str, name: str, branch: str,
                theme: Path) -> str:
    """The MyST project's ``myst.yml`` (JSON is valid YAML)."""
    config = {
        "version": 1,
        "project": {
            "title": title,
            "github": f"https://github.com/{owner}/{name}",
            "license": {"content": "CC-BY-4.0", "code": "MIT"},
            "toc": [{"file": "index.md"}, *({"file": c} for c in chapters),
                    {"file": "CLAIMS.md"}],
        },
        "site": {
            "template": str(theme),
            "title": title,
            "options": {
                "binder_url": f"https://mybinder.org/v2/gh/{owner}/{name}/{branch}",
                "repo_url": f"https://github.com/{owner}/{name}",
                "notebook_folder": "chapters/",
                "page_folder": "chapters/",
            },
        },
    }
    return json.dumps(config, indent=2) + "\n"


def stage_project(stage: Path, chapters: list[Path], cache: Path = CACHE) -> list[str]:
    """Write the MyST project (pages, ``myst.yml``, the theme) into ``stage``; returns
    the page files in order."""
    readme = (ROOT / "README.md").read_text()
    owner, name, branch = repository(readme)
    names = [c.name for c in chapters]
    for chapter in chapters:
        shutil.copy2(chapter, stage / chapter.name)
    claims = (CHAPTERS_DIR / "CLAIMS.md").read_text()
    # The claims' HTML anchors (<a id="c1"></a>, kept for GitHub) as MyST targets: (c1)=
    claims = re.sub(r'^<a id="([\w-]+)"></a>', r"(\1)=\n", claims, flags=re.M)
    (stage / "CLAIMS.md").write_text(claims)
    page, images = home_page(readme, names)
    (stage / "index.md").write_text(page)
    for image in images:
        (stage / image).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / image, stage / image)
    theme = stage / "_theme"
    shutil.copytree(THEME, theme)
    (theme / "node_modules").mkdir()           # nothing to install: MyST skips its npm step
    for pkg in WEB_PACKAGES:
        if not unpack_web_package(pkg, web_package(pkg, cache), theme / "public"):
            raise SiteError(f"{pkg.name}@{pkg.version} has no files under {pkg.keep}")
    title = readme.partition("\n")[0].lstrip("# ").strip()
    (stage / "myst.yml").write_text(myst_config(title, names, owner, name, branch, theme))
    return ["index.md", *names, "CLAIMS.md"]


# ------------------------------------------------------------------ building

# What MyST or the theme prints when a page or a file could not be made.
_FAILURE = re.compile(r"⛔|Error fetching|error rendering|shown without markup|"
                      r"App server exited|\bERR!|Traceback", re.I)
_WARNING = re.compile(r"⚠️")


def problems_in_log(log: str) -> tuple[list[str], list[str]]:
    """(failures, warnings): the lines of a build log that report each."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return ([x for x in lines if _FAILURE.search(x)],
            [x for x in lines if _WARNING.search(x) and not _FAILURE.search(x)])


def _check_out(out: Path) -> None:
    resolved = out.resolve()
    inside = resolved.relative_to(ROOT).parts if ROOT in resolved.parents else ()
    if resolved == ROOT or (inside and inside[0] in {"chapters", "lib", "assets", "tests",
                                                       "binder", "benchmarks", ".git"}):
        raise SiteError(f"{out} is inside the course's own files; build the website elsewhere, "
                        "for example python -m llmtrain site _site")
    if out.exists() and not out.is_dir():
        raise SiteError(f"{out} is a file; give a folder for the website")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise SiteError(f"{out} is not empty and is not a website built by this command; "
                        "give a new or empty folder (nothing was written)")


def build_site(out: Path, chapters: list[Path] | None = None, *, base_url: str = "",
               log=print, timeout: float = 600) -> SiteReport:
    """Build the website into ``out`` (created, or replaced if it holds an earlier build).

    ``chapters``: the notebooks to include (default: every chapter); ``base_url``:
    the path the site will be served under (``/course`` for a GitHub Pages project
    site), empty for the root of a domain or for opening the files.
    """
    out = Path(out)
    _check_out(out)
    why = node_problem()
    if why:
        raise SiteError(why)
    chapters = [Path(c) for c in (chapters or all_chapters())]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmtrain-site-") as tmp:
        stage = Path(tmp) / "course"
        stage.mkdir()
        pages = stage_project(stage, chapters)
        log(f"Building the website of {len(chapters)} chapters with Jupyter Book ...")
        env = dict(os.environ, BASE_URL=base_url.rstrip("/"), HOST="127.0.0.1",
                   NO_COLOR="1", FORCE_COLOR="0")
        env.pop("READTHEDOCS", None)
        try:
            done = subprocess.run([sys.executable, "-m", "jupyter_book", "build", "--html"],
                                  cwd=stage, env=env, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise SiteError(f"Jupyter Book did not finish in {timeout:.0f} s") from exc
        text = done.stdout + done.stderr
        failures, warnings = problems_in_log(text)
        html = stage / "_build" / "html"
        if done.returncode != 0 or failures or not (html / "index.html").exists():
            tail = "\n".join(failures or text.strip().splitlines()[-20:])
            raise SiteError(f"Jupyter Book could not build the website "
                            f"(exit code {done.returncode}):\n{tail}")
        config = json.loads((html / "config.json").read_text())
        slugs = ["index"] + [p["slug"] for p in config["projects"][0]["pages"]]
        missing = [s for s in slugs[1:] if not (html / s / "index.html").exists()]
        if missing or len(slugs) != len(pages):
            raise SiteError(f"Jupyter Book made no page for: {', '.join(missing) or 'some pages'}")
        (html / MARKER).write_text("built by python -m llmtrain site\n")
        (html / ".nojekyll").write_text("")     # GitHub Pages: serve the _-prefixed folders too
        partial = out.with_name(f".{out.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(html, partial)
        if out.exists():
            shutil.rmtree(out)
        partial.replace(out)
    return SiteReport(out=out, pages=slugs, seconds=time.perf_counter() - start,
                      warnings=warnings)

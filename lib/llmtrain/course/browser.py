"""JupyterLab in a real browser: a private Lab server and headless Chromium through Playwright.

Used by ``tests/test_browser.py`` (open a chapter, run it, move a slider, check
the plot) and by ``python -m llmtrain screenshots`` (the README's pictures).
Chromium is Debian's package (``apt-get install chromium``), driven through
Playwright with its executable path: Playwright's own browser download is never
used. The server gets its own temporary config, data, runtime and settings
folders, a random token and a free localhost port, and is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
IDLE = "Python 3 (ipykernel) | Idle"
SETTINGS = {   # user settings of the private Lab: no news toast, every cell in the page
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def chromium_executable() -> str | None:
    """Debian's Chromium (or ``$LLMTRAIN_CHROMIUM``), or None if it is not installed."""
    given = os.environ.get("LLMTRAIN_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_requirements() -> str | None:
    """Why a browser session cannot start here, or None if it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    if chromium_executable() is None:
        return ("Chromium is not installed: apt-get install -y chromium "
                "(or set LLMTRAIN_CHROMIUM to its path)")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """``jupyter lab`` on 127.0.0.1 serving ``root``; ``url(path)`` gives a page's address."""

    def __init__(self, root: Path, start_timeout: float = 90):
        self.root, self.start_timeout = Path(root), start_timeout
        self.port, self.token = _free_port(), os.urandom(12).hex()
        self.home = Path(tempfile.mkdtemp(prefix="llmtrain-lab-"))
        self.proc: subprocess.Popen | None = None

    def _env(self) -> dict:
        env = dict(os.environ)
        for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                         ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                         ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                         ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            env[var] = str(self.home / sub)
        for name, values in SETTINGS.items():
            path = self.home / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env.pop("MPLBACKEND", None)           # the kernel must make inline figures
        return env

    def start(self) -> LabServer:
        log = open(self.home / "lab.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
             "--ip", "127.0.0.1", "--port", str(self.port), f"--ServerApp.token={self.token}",
             f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited at start:\n{self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer in {self.start_timeout:.0f} s")

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"

    def log(self) -> str:
        path = self.home / "lab.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)      # the server and its kernels
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)


@contextmanager
def chromium_page(viewport=(1280, 900)):
    """A Playwright page in headless Debian Chromium, closed with its browser afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        finally:
            browser.close()


@contextmanager
def lab_page(root: Path, viewport=(1280, 900)):
    """A started Lab server on ``root`` and a Playwright page in headless Chromium."""
    server = LabServer(root).start()
    try:
        with chromium_page(viewport) as page:
            yield server, page
    finally:
        server.stop()


@contextmanager
def site_page(folder: Path, viewport=(1280, 900)):
    """A built website (``python -m llmtrain site``) served from ``folder`` on a free
    localhost port, and a Playwright page in headless Chromium.

    Yields ``(url, page, errors)``: ``url(path)`` is a page's address and ``errors``
    collects the page's uncaught script errors, error responses and failed requests
    (except loads cut short by leaving a page) as they happen.
    """
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):        # no line per request in the test's output
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    errors: list[str] = []
    try:
        with chromium_page(viewport) as page:
            page.on("pageerror", lambda e: errors.append(f"script error: {e}"))
            page.on("response", lambda r: errors.append(f"{r.status} for {r.url}")
                    if r.status >= 400 else None)
            # A load cut short by leaving the page (net::ERR_ABORTED) is not a fault; a
            # missing file is a 404 response, caught above.
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} "
                                                             f"({r.failure})")
                    if "ERR_ABORTED" not in (r.failure or "") else None)
            yield (lambda path="/": base + path), page, errors
    finally:
        httpd.shutdown()
        httpd.server_close()


def open_notebook(server: LabServer, page, name: str, timeout: float = 90) -> None:
    """Open ``name`` (relative to the server's root) and wait until its kernel is idle."""
    page.goto(server.url(f"lab/tree/{name}?reset"))
    page.get_by_text(IDLE).first.wait_for(timeout=timeout * 1000)


def run_all(page, timeout: float = 300) -> None:
    """Run → Run All Cells, then wait until every code cell has run and the kernel is idle."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""", timeout=timeout * 1000, polling=500)
    page.get_by_text(IDLE).first.wait_for(timeout=timeout * 1000)


def error_outputs(page) -> list[str]:
    """Texts of outputs that show a traceback, and widgets that failed to display."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.jp-OutputArea-output')]
              .map(o => o.innerText)
              .filter(t => t.includes('Traceback') || t.includes('Error displaying widget'))
              .map(t => t.slice(0, 500))""")


def cell_with(page, text: str):
    """The notebook cell whose output shows ``text`` (e.g. a playground's title)."""
    return page.locator(".jp-CodeCell", has=page.locator(".jp-OutputArea", has_text=text)).first


def wait_idle(page, timeout: float = 120) -> None:
    """Wait until the kernel status in the status bar says idle again."""
    page.wait_for_timeout(300)            # let a just-sent change reach the kernel
    page.get_by_text(IDLE).first.wait_for(timeout=timeout * 1000)


def nudge_slider(cell, description: str, presses: int = 1) -> None:
    """Focus the slider labelled ``description`` in ``cell`` and press the right arrow."""
    slider = cell.locator(".widget-slider", has_text=description).first
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    for _ in range(presses):
        handle.press("ArrowRight")


def plot_source(cell) -> str | None:
    """The ``src`` of the last figure shown in a cell's output, or None."""
    images = cell.locator(".jp-OutputArea img")
    return images.last.get_attribute("src") if images.count() else None


def wait_for_new_plot(page, cell, old: str | None, timeout: float = 60) -> str:
    """Wait until the cell's figure differs from ``old``; returns the new ``src``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        src = plot_source(cell)
        if src and src != old:
            return src
        page.wait_for_timeout(250)
    raise TimeoutError(f"the plot did not change within {timeout:.0f} s")


def ink(src: str) -> float:
    """Share of a ``data:image/png`` figure's pixels that are not near-white (0 = a blank plot)."""
    import base64
    import io

    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        gray = Image.alpha_composite(white, rgba).convert("L")
    pixels = gray.get_flattened_data() if hasattr(gray, "get_flattened_data") else gray.getdata()
    return sum(p < 200 for p in pixels) / max(1, gray.width * gray.height)


def wait_images_painted(page, cell, timeout: float = 30) -> None:
    """Wait until every figure in the cell's output is decoded, then two animation frames."""
    cell.locator(".jp-OutputArea img").last.wait_for(timeout=timeout * 1000)
    page.wait_for_function(
        """el => [...el.querySelectorAll('.jp-OutputArea img')]
                  .every(img => img.complete && img.naturalWidth > 0)""",
        arg=cell.element_handle(), timeout=timeout * 1000, polling=200)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.wait_for_timeout(500)


def playground_messages(cell) -> list[str]:
    """Warnings a Playground shows in its message line (``⚠ ...``) inside a cell's output."""
    return [t for t in cell.locator(".jp-OutputArea .widget-html").all_inner_texts() if "⚠" in t]


# (chapter, file name, text in the playground's output, slider to move or None) for the README.
# The sliders stay put: a plot redrawn after a slider move comes out blank in JupyterLab
# (see tests/test_browser.py) until widgets.Playground renders its figure before displaying it.
SHOTS = [("01_next_token", "playground_01_next_token.png", "Next-token explorer", None),
         ("02_gradient_descent", "playground_02_landscape.png", "Descend a landscape", None)]


def prepare_quick(chapter: Path, root: Path) -> Path:
    """A copy of a chapter in ``root`` with ``quick = True`` injected (papermill, not run)."""
    import papermill

    target = Path(root) / chapter.name
    papermill.execute_notebook(str(chapter), str(target), parameters={"quick": True},
                               prepare_only=True, kernel_name="python3", progress_bar=False)
    return target


def take_screenshots(out_dir: Path, chapters_dir: Path, shots=SHOTS) -> list[Path]:
    """Run each chapter (quick) in JupyterLab, move its playground's slider, save the output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="llmtrain-shots-"))
    written = []
    try:
        for stem, filename, title, slider in shots:
            nb = prepare_quick(chapters_dir / f"{stem}.ipynb", root)
            with lab_page(root, viewport=(1100, 1400)) as (server, page):
                open_notebook(server, page, nb.name)
                run_all(page)
                cell = cell_with(page, title)
                cell.scroll_into_view_if_needed()
                if slider:
                    old = plot_source(cell)
                    nudge_slider(cell, slider)
                    wait_for_new_plot(page, cell, old)
                    wait_idle(page)
                output = cell.locator(".jp-OutputArea").first
                output.scroll_into_view_if_needed()
                wait_images_painted(page, cell)
                target = out_dir / filename
                output.screenshot(path=str(target), animations="disabled")
                shrink_png(target)
                written.append(target)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return written


def shrink_png(path: Path, colors: int = 128) -> None:
    """Re-save a screenshot with a palette of ``colors`` (a few times smaller, looks the same)."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)

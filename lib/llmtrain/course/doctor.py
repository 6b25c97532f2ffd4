"""``python -m llmtrain doctor``: what is wrong with this setup, said before a chapter fails.

Each check is a small function that returns a ``Result`` (the assets check a list of them,
one per damaged file): a status (ok, warning, problem), a label, what was found and, unless
all is well, the fix in one line. A check's inputs are parameters whose default (None) means
"look at this machine", so a test fakes a problem by passing it in. ``main`` prints a header,
a line per check and a summary line, and returns 1 when a chapter cannot run (any problem),
else 0: a warning is something that works less well (speed, the playgrounds' sliders, the
browser test) or was not checked, never something that stops a chapter.

The checks: Python and torch (against the pin in requirements.txt), the device the chapters
pick with ``device="auto"``, the Jupyter kernel "python3" and the course's kernel config,
the widgets' front end in JupyterLab, the shipped assets against their manifests (sha256
only, a second or two: no model is loaded), free memory and disk, Chromium, Node.js for the
website, and the folder ``python -m llmtrain run`` writes to. No module-level import here
needs torch or Jupyter: a check that needs them imports them, and a broken install becomes
that check's problem.

Why one module: the checks are twelve small independent functions that read as one list,
in the order ``CHECKS`` runs them and the output shows them; split up, a reader would hunt
through files for what one printed line means.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .paths import ROOT, FolderNotWritable, sha256_file, writable_folder

OK, WARNING, PROBLEM = "ok", "warning", "problem"
SYMBOLS = {OK: "✔", WARNING: "⚠", PROBLEM: "✘"}
ASCII_SYMBOLS = {OK: "[ok]", WARNING: "[warning]", PROBLEM: "[PROBLEM]"}

MIN_PYTHON = (3, 10)
NEED_MEMORY_GB = 1.5          # what one chapter's kernel needs at its peak
MIN_DISK_GB = 1.0
REQUIREMENTS = ROOT / "requirements.txt"
PIP_FIX = "with the course's venv active: `pip install -r requirements.txt`"
KERNEL_FIX = ("with the course's venv active, run `python -m ipykernel install --user --name "
              "python3`, or start JupyterLab from that venv")
WIDGETS_NEED = {8: 3, 7: 1}   # ipywidgets major version -> jupyterlab_widgets major version


@dataclass(frozen=True)
class Result:
    """One check's verdict: ``status`` is OK, WARNING or PROBLEM; ``fix`` says what to do
    (empty when all is well)."""

    status: str
    label: str
    detail: str
    fix: str = ""


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB"


# ---- Python and torch ----------------------------------------------------------------------

def check_python(version: tuple[int, ...] | None = None) -> Result:
    """Python 3.10 or newer."""
    version = tuple(version or sys.version_info[:3])
    text = ".".join(map(str, version))
    if version[:2] < MIN_PYTHON:
        return Result(PROBLEM, "Python",
                      f"{text} ({sys.executable}): the course needs Python 3.10 or newer",
                      "install Python 3.10 or newer, make the course's venv with it "
                      "(`python3 -m venv .venv`) and `pip install -r requirements.txt` in it")
    return Result(OK, "Python", f"{text} ({sys.executable})")


@dataclass(frozen=True)
class TorchInfo:
    """What is installed: ``version`` None means torch does not import (``error`` says why);
    ``cuda`` is the CUDA version of a CUDA build, ``mps`` whether it was built for MPS."""

    version: str | None
    cuda: str | None = None
    mps: bool = False
    error: str = ""


def torch_info() -> TorchInfo:
    """The installed torch, imported here (a broken install is reported, not raised)."""
    try:
        import torch
    except Exception as e:    # ImportError, or OSError from a missing shared library
        return TorchInfo(None, error=f"{type(e).__name__}: {e}")
    mps = getattr(torch.backends, "mps", None)
    return TorchInfo(torch.__version__, torch.version.cuda,
                     bool(mps is not None and mps.is_built()))


def pinned_torch(requirements: Path = REQUIREMENTS) -> str | None:
    """The version requirements.txt pins torch to (``torch==X``), or None."""
    try:
        text = requirements.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = re.search(r"^\s*torch\s*==\s*([^\s#;]+)", text, flags=re.MULTILINE)
    return found.group(1) if found else None


def _build(info: TorchInfo) -> str:
    if info.cuda:
        return f"CUDA {info.cuda} build"
    return "MPS build" if info.mps else "CPU build"


def check_torch(info: TorchInfo | None = None, pinned: str | None = None) -> Result:
    """torch imports, and is the version requirements.txt pins (another one is a warning)."""
    info = info or torch_info()
    pinned = pinned or pinned_torch()
    if info.version is None:
        return Result(PROBLEM, "torch", f"torch does not import ({info.error})", PIP_FIX)
    detail = f"{info.version} ({_build(info)})"
    if pinned and info.version.split("+")[0] != pinned:
        return Result(WARNING, "torch",
                      f"{detail}, but requirements.txt pins torch=={pinned}: the chapters were "
                      "checked with that version",
                      f"`pip install torch=={pinned}` (or `pip install -r requirements.txt`)")
    return Result(OK, "torch", detail + (", the version requirements.txt pins" if pinned else ""))


# ---- the device ----------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceInfo:
    """What ``device="auto"`` gives here: ``kind`` ("cuda", "mps", "cpu"), core.device's
    one-line ``description``, the GPUs as (name, bytes), and whether ``nvidia-smi`` exists."""

    kind: str
    description: str
    torch: TorchInfo
    gpus: tuple[tuple[str, int], ...] = ()
    nvidia_smi: bool = False


def device_info() -> DeviceInfo:
    """Ask torch and core.device (raises ImportError without torch)."""
    import torch

    from ..core.device import describe, pick_device

    device = pick_device("auto")
    gpus = ()
    if device.type == "cuda":
        gpus = tuple((p.name, p.total_memory) for p in
                     map(torch.cuda.get_device_properties, range(torch.cuda.device_count())))
    return DeviceInfo(device.type, describe(device), torch_info(), gpus,
                      shutil.which("nvidia-smi") is not None)


def check_device(info: DeviceInfo | None = None) -> Result:
    """The device each chapter runs on with device="auto" (cuda > mps > cpu), and why."""
    if info is None:
        try:
            info = device_info()
        except (ImportError, OSError):     # no torch, or one missing a shared library
            return Result(WARNING, "device", "not checked: torch does not import (see above)",
                          PIP_FIX)
    if info.kind == "cuda":
        (name, memory), *others = info.gpus
        more = f" and {len(others)} more" if others else ""
        why = f"a CUDA GPU is visible: {name}, {_gb(memory)}{more}; chapters use their GPU sizes"
    elif info.kind == "mps":
        why = "no CUDA GPU, but Apple's GPU (MPS) is available"
    elif info.torch.cuda:
        why = (f"this torch is a CUDA {info.torch.cuda} build but no GPU is visible (no NVIDIA "
               "driver, or CUDA_VISIBLE_DEVICES hides it); chapters use their CPU sizes")
    elif info.nvidia_smi:
        return Result(WARNING, "device",
                      f'"auto" picks {info.description}: nvidia-smi is here, so there seems to '
                      "be an NVIDIA GPU, but this torch is a CPU build and cannot use it",
                      "chapters run on the CPU anyway; to use the GPU install a CUDA build of "
                      "torch (on Linux `pip install torch` from PyPI is one)")
    else:
        why = ("this torch cannot use a GPU here (" + _build(info.torch) +
               "); chapters use their CPU sizes")
    return Result(OK, "device", f'"auto" picks {info.description}: {why}')


# ---- Jupyter ---------------------------------------------------------------------------------

def find_kernelspec(name: str = "python3") -> dict | None:
    """The kernelspec JupyterLab started from this environment would use for ``name``, as
    ``{"argv": [...], "resource_dir": "..."}``, or None. Raises ImportError without Jupyter."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None
    return {"argv": list(spec.argv), "resource_dir": spec.resource_dir}


def _place(path: str) -> Path:
    """An absolute path with its folder's links resolved but not the file's own: a venv's
    bin/python is a link to the system Python, which is a different environment."""
    p = Path(os.path.abspath(path))
    return p.parent.resolve() / p.name


def same_environment(python: str, executable: str, prefix: str) -> bool:
    """Whether the interpreter at ``python`` is ``executable`` or lives in ``prefix``."""
    p = _place(python)
    return p == _place(executable) or Path(prefix).resolve() in p.parents


def check_kernel(find: Callable[[], dict | None] | None = None, executable: str | None = None,
                 prefix: str | None = None, lab: str | None = None) -> Result:
    """A kernelspec "python3" exists and runs this Python (or this environment's). A bare
    "python" in it means the Python that runs JupyterLab: then the `jupyter-lab` on the PATH
    (``lab``; "" for none) must be this environment's."""
    executable, prefix = executable or sys.executable, prefix or sys.prefix
    lab = (shutil.which("jupyter-lab") or "") if lab is None else lab
    try:
        spec = (find or find_kernelspec)()
    except ImportError as e:
        return Result(PROBLEM, "Jupyter kernel",
                      f"Jupyter is not installed in this environment ({e})", PIP_FIX)
    if spec is None:
        return Result(PROBLEM, "Jupyter kernel",
                      'no kernel named "python3": JupyterLab cannot run the chapters', KERNEL_FIX)
    where = Path(spec["resource_dir"]) / "kernel.json"
    argv0 = spec["argv"][0] if spec["argv"] else ""
    # jupyter_client starts a bare "python" (or pythonX, pythonX.Y) with the Python that runs
    # the Jupyter server itself
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info)}
    if argv0 in bare and lab and not same_environment(lab, executable, prefix):
        return Result(WARNING, "Jupyter kernel",
                      f'"python3" ({where}) runs the Python that runs JupyterLab, and the '
                      f"`jupyter-lab` on the PATH is another environment's ({lab})",
                      f"activate the course's venv before `jupyter lab` (or start "
                      f"{Path(executable).parent / 'jupyter-lab'})")
    if argv0 in bare:
        how = (f"the `jupyter-lab` on the PATH is this environment's ({lab})" if lab else
               f"start JupyterLab from this environment ({prefix})")
        return Result(OK, "Jupyter kernel",
                      f'"python3" ({where}) runs the Python that runs JupyterLab; {how}')
    python = argv0 if os.path.isabs(argv0) else shutil.which(argv0) if argv0 else None
    if python is None or not Path(python).exists():
        return Result(PROBLEM, "Jupyter kernel",
                      f'"python3" ({where}) starts {argv0!r}, which does not exist', KERNEL_FIX)
    if not same_environment(python, executable, prefix):
        return Result(PROBLEM, "Jupyter kernel",
                      f'"python3" ({where}) runs {python}, not this Python ({executable}): '
                      "the chapters would run without the course's packages", KERNEL_FIX)
    return Result(OK, "Jupyter kernel", f'"python3" ({where}) runs this Python ({python})')


def check_kernel_config(prefix: str | os.PathLike | None = None) -> Result:
    """lib/kernel-config's ipython_kernel_config.py in <prefix>/etc/ipython: it makes every
    kernel set OMP_WAIT_POLICY=PASSIVE before torch loads. Without it chapters run, slower."""
    path = Path(prefix or sys.prefix) / "etc" / "ipython" / "ipython_kernel_config.py"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return Result(WARNING, "kernel config",
                      f"{path} is missing: kernels do not set OMP_WAIT_POLICY=PASSIVE, so "
                      "training can be many times slower on a busy CPU",
                      PIP_FIX + " (it installs lib/kernel-config)")
    if "OMP_WAIT_POLICY" not in text:
        return Result(WARNING, "kernel config",
                      f"{path} is not the course's: it does not set OMP_WAIT_POLICY=PASSIVE",
                      "`pip install --force-reinstall ./lib/kernel-config` (it replaces the file)")
    return Result(OK, "kernel config", f"{path} sets OMP_WAIT_POLICY=PASSIVE")


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each of ``names`` (a package that is not installed is left
    out)."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def _major(version: str) -> int | None:
    found = re.match(r"\d+", version)
    return int(found.group()) if found else None


def check_widgets(versions: dict[str, str] | None = None) -> Result:
    """ipywidgets (the chapters import it) and its JupyterLab front end, jupyterlab_widgets,
    in matching versions; ``versions`` maps the installed ones to their versions."""
    if versions is None:
        versions = package_versions(("ipywidgets", "jupyterlab_widgets", "jupyterlab"))
    ipyw, front = versions.get("ipywidgets"), versions.get("jupyterlab_widgets")
    if ipyw is None:
        return Result(PROBLEM, "widgets",
                      "ipywidgets is not installed: the chapters' playgrounds do not import",
                      PIP_FIX)
    if front is None:
        return Result(WARNING, "widgets",
                      f"ipywidgets {ipyw} without jupyterlab_widgets, its JupyterLab front end: "
                      "the playgrounds show as text instead of sliders", PIP_FIX)
    need = WIDGETS_NEED.get(_major(ipyw))
    if need is not None and _major(front) != need:
        return Result(WARNING, "widgets",
                      f"ipywidgets {ipyw} needs jupyterlab_widgets {need}.x, but {front} is "
                      "installed: the playgrounds will not show", PIP_FIX)
    if "jupyterlab" not in versions:
        return Result(WARNING, "widgets",
                      f"ipywidgets {ipyw} with jupyterlab_widgets {front}, but JupyterLab is not "
                      "installed in this environment", PIP_FIX)
    return Result(OK, "widgets", f"ipywidgets {ipyw} with jupyterlab_widgets {front} "
                                 f"(JupyterLab {versions['jupyterlab']})")


# ---- the shipped assets --------------------------------------------------------------------

def _split_fix(message: str, fix: str) -> tuple[str, str]:
    """A helper's error message "what: fix" as (what, fix)."""
    if fix in message:
        message = message[: message.index(fix)].rstrip(" :;,")
    return message, fix


def check_assets(names: Iterable[str] | None = None) -> list[Result]:
    """Every checkpoint's weights (assets/zoo/<name>.safetensors) and the tokenizer against
    their manifests, by sha256 only: a problem per damaged file, each with its fix.

    The files are where ``course.checkpoints`` and ``course.shared_data`` look
    (``LLMTRAIN_ASSETS`` moves them); nothing is loaded but the tokenizer.
    """
    from . import checkpoints, recipes, shared_data, zoo

    start, n_bytes = time.perf_counter(), 0
    names = list(recipes.RECIPES if names is None else names)
    damaged, tokenizer_shas = [], set()
    for name in names:
        try:
            m = checkpoints.manifest(name)
        except (OSError, ValueError) as e:
            fix = checkpoints.how_to_fix(name, checkpoints.ZOO_DIR / f"{name}.json")
            damaged.append(Result(PROBLEM, "assets", *_split_fix(str(e), fix)))
            continue
        tokenizer_shas.add(m["tokenizer_sha256"])
        weights = checkpoints.ZOO_DIR / f"{name}.safetensors"
        fix = checkpoints.how_to_fix(name, weights)
        try:
            digest = sha256_file(weights)
            n_bytes += weights.stat().st_size
        except FileNotFoundError:
            damaged.append(Result(PROBLEM, "assets", f"{weights} is missing", fix))
            continue
        except OSError as e:
            damaged.append(Result(PROBLEM, "assets",
                                  f"{weights} cannot be read ({e.strerror or e})", fix))
            continue
        if digest != m["weights_sha256"]:
            damaged.append(Result(PROBLEM, "assets",
                                  f"{weights} does not match its manifest (sha256 differs): "
                                  "the file is damaged or was changed", fix))
    tokenizer = shared_data.TOKENIZER_PATH
    problems = zoo.verify_tokenizer()
    for problem in problems:
        what, fix = _split_fix(problem.removeprefix("tokenizer: "), shared_data.TOKENIZER_FIX)
        damaged.append(Result(PROBLEM, "assets", what, fix))
    if not problems and tokenizer_shas and sha256_file(tokenizer) not in tokenizer_shas:
        damaged.append(Result(PROBLEM, "assets",
                              f"{tokenizer} is not the tokenizer the checkpoints were built "
                              "with (sha256 differs from their manifests)",
                              shared_data.TOKENIZER_FIX))
    if damaged:
        return damaged
    return [Result(OK, "assets", f"the tokenizer and {len(names)} checkpoints match their "
                                 f"manifests (sha256 of {n_bytes / 1e6:.0f} MB in "
                                 f"{time.perf_counter() - start:.1f} s)")]


# ---- memory and disk -----------------------------------------------------------------------

def meminfo_available(text: str) -> int | None:
    """MemAvailable from /proc/meminfo's text, in bytes, or None."""
    found = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, flags=re.MULTILINE)
    return int(found.group(1)) * 1024 if found else None


CGROUP_FILES = (   # (limit, usage, stat) of cgroup v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
     "/sys/fs/cgroup/memory/memory.stat"),
)


def read_cgroup() -> tuple[str, str, str] | tuple[()]:
    """This container's memory limit, usage and stat texts; () outside a limited cgroup."""
    for files in CGROUP_FILES:
        try:
            return tuple(Path(f).read_text() for f in files)
        except OSError:
            continue
    return ()


def cgroup_available(limit: str, usage: str, stat: str = "") -> int | None:
    """What a container (Binder, Docker, Kubernetes) may still use, in bytes: its limit less
    what it uses, not counting the page cache it can drop; None without a limit."""
    limit = limit.strip()
    if not limit.isdigit() or int(limit) >= 1 << 60:     # "max", or v1's "no limit"
        return None
    used = int(usage.strip()) if usage.strip().isdigit() else 0
    cache = re.search(r"^(?:total_)?inactive_file\s+(\d+)", stat, flags=re.MULTILINE)
    used -= min(used, int(cache.group(1))) if cache else 0
    return max(0, int(limit) - used)


def check_memory(meminfo: str | None = None, cgroup: tuple[str, ...] | None = None,
                 use_psutil: bool = True, need_gb: float = NEED_MEMORY_GB) -> Result:
    """Free memory against what a chapter needs: the smaller of /proc/meminfo's MemAvailable
    and the container's limit less its use; psutil elsewhere; else unknown (a warning)."""
    if meminfo is None:
        try:
            meminfo = Path("/proc/meminfo").read_text()
        except OSError:
            meminfo = ""
    if cgroup is None:
        cgroup = read_cgroup()
    found = {"free": meminfo_available(meminfo),
             "left under the container's limit": cgroup_available(*cgroup) if cgroup else None}
    if found["free"] is None and use_psutil and importlib.util.find_spec("psutil"):
        import psutil

        found["free"] = psutil.virtual_memory().available
    found = {what: n for what, n in found.items() if n is not None}
    need = f"a chapter needs about {need_gb:g} GB"
    if not found:
        return Result(WARNING, "memory", f"free memory unknown on this platform ({need})",
                      f"make sure about {need_gb:g} GB of memory are free before a chapter")
    what = min(found, key=found.get)
    if found[what] < need_gb * 1e9:
        return Result(PROBLEM, "memory", f"{_gb(found[what])} {what}: {need}",
                      "close other programs (browser tabs, other notebooks' kernels); on "
                      "Binder, which gives about 2 GB, run one chapter at a time")
    return Result(OK, "memory", f"{_gb(found[what])} {what} ({need})")


def check_disk(folder: str | os.PathLike | None = None, free_bytes: int | None = None,
               min_gb: float = MIN_DISK_GB) -> Result:
    """Free disk space in the repository's folder (below ``min_gb``: a warning)."""
    folder = Path(folder or ROOT)
    free = shutil.disk_usage(folder).free if free_bytes is None else free_bytes
    if free < min_gb * 1e9:
        return Result(WARNING, "disk", f"only {_gb(free)} free in {folder}: executed notebooks "
                                       "and runs may not fit",
                      "free some space (old runs/ folders), or write runs elsewhere with "
                      "`python -m llmtrain run --out DIR`")
    return Result(OK, "disk", f"{_gb(free)} free in {folder}")


# ---- Chromium and the runs folder ----------------------------------------------------------

def check_chromium(find: Callable[[], str | None] | None = None) -> Result:
    """Chromium, found as course.browser finds it (LLMTRAIN_CHROMIUM, else the `chromium`
    command): only the browser test and the screenshots need it, so missing is a warning."""
    from . import browser

    found = (find or browser.chromium_executable)()
    if found is None:
        given = os.environ.get("LLMTRAIN_CHROMIUM")
        what = (f"LLMTRAIN_CHROMIUM={given} does not exist" if given
                else "no `chromium` command on the PATH")
        return Result(WARNING, "Chromium",
                      f"{what}: only the browser test (tests/test_browser.py) and "
                      "`python -m llmtrain screenshots` need it",
                      "`sudo apt-get install -y chromium` (or set LLMTRAIN_CHROMIUM to a "
                      "Chromium executable)")
    if importlib.util.find_spec("playwright") is None:
        return Result(WARNING, "Chromium",
                      f"{found}, but the playwright package that drives it is not installed",
                      PIP_FIX)
    return Result(OK, "Chromium", f"{found} (for the browser test and the screenshots)")


def check_website(problem: Callable[[], str | None] | None = None) -> Result:
    """Node.js 18+ and the jupyter-book package, for ``python -m llmtrain site``: only the
    website needs them, so missing is a warning."""
    from . import site

    why = (problem or site.node_problem)()
    if why:
        what, _, fix = why.partition("; ")
        if not fix and ": " in what:
            what, fix = what.split(": ", 1)
        return Result(WARNING, "website", f"{what}: only `python -m llmtrain site` (the "
                      "course as a website) and its test need it", fix or PIP_FIX)
    version = ".".join(map(str, site.node_version() or ()))
    return Result(OK, "website", f"Node.js {version} and jupyter-book "
                  f"(for `python -m llmtrain site`)")


def check_writable(folder: str | os.PathLike | None = None) -> Result:
    """The folder ``python -m llmtrain run`` writes to by default (runs/ in the current
    folder) can be written; it is not created: its nearest existing folder is tried."""
    folder = Path(os.path.abspath(folder or "runs"))
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        writable_folder(existing)
    except FolderNotWritable as e:
        return Result(WARNING, "runs folder",
                      f"cannot write to {e.folder} ({e.reason}), so `python -m llmtrain run` "
                      f"cannot write to {folder}",
                      "pass a folder you can write to: `python -m llmtrain run --out /tmp/runs`")
    return Result(OK, "runs folder", f"{folder} can be written (`python -m llmtrain run`)")


# ---- all of them -------------------------------------------------------------------------------

CHECKS: tuple[Callable[[], Result | list[Result]], ...] = (
    check_python, check_torch, check_device, check_kernel, check_kernel_config, check_widgets,
    check_assets, check_memory, check_disk, check_chromium, check_website, check_writable)


def run_checks(checks: Iterable[Callable] = CHECKS) -> Iterable[Result]:
    """Each check's results in turn; a check that fails itself becomes a warning (the others
    still run)."""
    for check in checks:
        try:
            results = check()
        except Exception as e:
            name = getattr(check, "__name__", "check").removeprefix("check_").replace("_", " ")
            results = Result(WARNING, name, f"not checked: the check failed "
                                            f"({type(e).__name__}: {e})",
                             "run `python -m llmtrain doctor` again; if it fails again, "
                             "report it with this line")
        yield from (results if isinstance(results, list) else [results])


def symbols_for(stream) -> dict[str, str]:
    """✔ ⚠ ✘ where ``stream`` can print them, else plain words (e.g. a Windows console)."""
    encoding = getattr(stream, "encoding", None)
    if encoding is None:                 # text kept in memory (io.StringIO): no encoding
        return SYMBOLS
    try:
        "".join(SYMBOLS.values()).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_SYMBOLS
    return SYMBOLS


def format_result(r: Result, symbols: dict[str, str] = SYMBOLS) -> str:
    """One line, and the fix on a second line for anything that is not ok."""
    line = f"{symbols[r.status]} {r.label:<15}{r.detail}"
    if r.status != OK and r.fix:
        line += f"\n  {' ' * len(symbols[r.status])}{'fix:':<15}{r.fix}"
    return line


def summary(results: list[Result]) -> str:
    """"N problems, M warnings: a chapter can / cannot run"."""
    problems = sum(r.status == PROBLEM for r in results)
    warnings = sum(r.status == WARNING for r in results)
    verdict = ("a chapter cannot run: fix the problems above first" if problems
               else "a chapter can run")
    return (f"{problems} problem{'s' * (problems != 1)}, {warnings} "
            f"warning{'s' * (warnings != 1)}: {verdict}")


def main(checks: Iterable[Callable] = CHECKS, stream=None) -> int:
    """Print the header, each check as it finishes, and the summary; 1 if a chapter cannot
    run (a problem), else 0."""
    stream = stream or sys.stdout
    symbols = symbols_for(stream)
    print(f"llmtrain doctor: the course in {ROOT}, Python {platform.python_version()} "
          f"({sys.executable})", file=stream, flush=True)
    results = []
    for r in run_checks(checks):
        results.append(r)
        print(format_result(r, symbols), file=stream, flush=True)
    print(summary(results), file=stream, flush=True)
    return 1 if any(r.status == PROBLEM for r in results) else 0

"""``python -m llmtrain doctor``: each problem it is there to find, faked through the check's
parameters, is reported with its status and its fix, and the exit status says whether a
chapter can run (1 for a problem, 0 for warnings only). The assets are damaged in a copy in a
temporary folder (assets/ is never touched). One end-to-end run on this machine expects 0.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmtrain.course import checkpoints, doctor, paths, shared_data, zoo
from llmtrain.course.doctor import OK, PROBLEM, WARNING, DeviceInfo, Result, TorchInfo

ROOT = Path(__file__).resolve().parents[1]


def exit_status(*results: Result) -> tuple[int, str]:
    """``doctor.main`` over checks that give ``results``: (exit status, printed text)."""
    out = io.StringIO()
    status = doctor.main([lambda r=r: r for r in results], stream=out)
    return status, out.getvalue()


def test_old_python_is_a_problem_and_a_chapter_cannot_run():
    r = doctor.check_python((3, 9, 18))
    assert r.status == PROBLEM and "3.9.18" in r.detail and "3.10 or newer" in r.detail
    assert "pip install -r requirements.txt" in r.fix
    assert doctor.check_python((3, 10, 0)).status == OK
    status, text = exit_status(r)
    assert status == 1 and "1 problem, 0 warnings: a chapter cannot run" in text


def test_another_torch_than_the_pinned_one_is_a_warning():
    assert doctor.pinned_torch(ROOT / "requirements.txt") is not None
    r = doctor.check_torch(TorchInfo("2.5.1+cu121", cuda="12.1"), pinned="2.13.0")
    assert r.status == WARNING and "CUDA 12.1 build" in r.detail
    assert "torch==2.13.0" in r.detail and "pip install torch==2.13.0" in r.fix
    assert exit_status(r)[0] == 0, "a chapter still runs with another torch"
    same = doctor.check_torch(TorchInfo("2.13.0+cpu"), pinned="2.13.0")
    assert same.status == OK and "CPU build" in same.detail
    broken = doctor.check_torch(TorchInfo(None, error="ImportError: libtorch.so"), pinned="2.13.0")
    assert broken.status == PROBLEM and "libtorch.so" in broken.detail
    assert "pip install -r requirements.txt" in broken.fix


def test_the_device_says_why_and_names_the_gpu():
    cuda = DeviceInfo("cuda", "cuda (NVIDIA H100 80GB HBM3), bfloat16 autocast",
                      TorchInfo("2.13.0", cuda="12.8"), gpus=(("NVIDIA H100 80GB HBM3", 85e9),))
    r = doctor.check_device(cuda)
    assert r.status == OK and "NVIDIA H100 80GB HBM3, 85.0 GB" in r.detail
    hidden = doctor.check_device(DeviceInfo("cpu", "cpu (2 threads), float32",
                                            TorchInfo("2.13.0", cuda="12.8")))
    assert hidden.status == OK and "no GPU is visible" in hidden.detail
    unused = doctor.check_device(DeviceInfo("cpu", "cpu (2 threads), float32",
                                            TorchInfo("2.13.0+cpu"), nvidia_smi=True))
    assert unused.status == WARNING and "CPU build" in unused.detail and "CUDA build" in unused.fix


def test_no_python3_kernelspec_is_a_problem():
    r = doctor.check_kernel(find=lambda: None)
    assert r.status == PROBLEM and '"python3"' in r.detail
    assert "python -m ipykernel install --user --name python3" in r.fix
    assert "start JupyterLab from that venv" in r.fix
    assert exit_status(r)[0] == 1


def fake_python(folder: Path) -> Path:
    python = folder / "bin" / "python3"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    return python


def test_a_kernelspec_running_another_python_is_a_problem(tmp_path):
    here, other = fake_python(tmp_path / "venv"), fake_python(tmp_path / "elsewhere")
    spec = {"argv": [str(other), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "resource_dir": str(tmp_path / "kernels" / "python3")}
    r = doctor.check_kernel(find=lambda: spec, executable=str(here), prefix=str(tmp_path / "venv"))
    assert r.status == PROBLEM and str(other) in r.detail and str(here) in r.detail
    assert "python -m ipykernel install --user --name python3" in r.fix
    assert exit_status(r)[0] == 1

    (here.parent / "python").symlink_to(here)       # as in a venv: bin/python -> python3
    same = dict(spec, argv=[str(here.parent / "python")] + spec["argv"][1:])
    ok = doctor.check_kernel(find=lambda: same, executable=str(here), prefix=str(here.parents[1]))
    assert ok.status == OK, "another name in the same environment is this environment's Python"
    gone = dict(spec, argv=[str(tmp_path / "deleted" / "python3")])
    assert doctor.check_kernel(find=lambda: gone, executable=str(here)).status == PROBLEM


def test_a_bare_python_kernel_needs_this_environments_jupyterlab(tmp_path):
    here = fake_python(tmp_path / "venv")
    bare = {"argv": ["python", "-m", "ipykernel_launcher"], "resource_dir": str(tmp_path)}
    args = dict(find=lambda: bare, executable=str(here), prefix=str(tmp_path / "venv"))
    assert doctor.check_kernel(lab=str(here.parent / "jupyter-lab"), **args).status == OK
    assert doctor.check_kernel(lab="", **args).status == OK
    r = doctor.check_kernel(lab="/usr/bin/jupyter-lab", **args)
    assert r.status == WARNING and "/usr/bin/jupyter-lab" in r.detail
    assert "activate the course's venv" in r.fix


def test_a_missing_kernel_config_is_a_warning_with_its_fix(tmp_path):
    r = doctor.check_kernel_config(tmp_path)
    assert r.status == WARNING and "ipython_kernel_config.py is missing" in r.detail
    assert "OMP_WAIT_POLICY" in r.detail and "pip install -r requirements.txt" in r.fix
    assert exit_status(r)[0] == 0
    config = tmp_path / "etc" / "ipython" / "ipython_kernel_config.py"
    config.parent.mkdir(parents=True)
    config.write_text("c = get_config()\n")
    other = doctor.check_kernel_config(tmp_path)
    assert other.status == WARNING and "--force-reinstall ./lib/kernel-config" in other.fix
    shutil.copy(ROOT / "lib" / "kernel-config" / "ipython_kernel_config.py", config)
    assert doctor.check_kernel_config(tmp_path).status == OK


def test_missing_or_mismatched_jupyterlab_widgets_is_a_warning():
    lab = {"ipywidgets": "8.1.9", "jupyterlab": "4.6.6"}
    r = doctor.check_widgets(lab)
    assert r.status == WARNING and "without jupyterlab_widgets" in r.detail
    assert "pip install -r requirements.txt" in r.fix
    assert exit_status(r)[0] == 0
    old = doctor.check_widgets(dict(lab, jupyterlab_widgets="1.1.7"))
    assert old.status == WARNING and "needs jupyterlab_widgets 3.x" in old.detail
    assert doctor.check_widgets(dict(lab, jupyterlab_widgets="3.0.17")).status == OK
    none = doctor.check_widgets({"jupyterlab": "4.6.6"})
    assert none.status == PROBLEM and "ipywidgets is not installed" in none.detail


@pytest.fixture
def small_zoo(tmp_path, monkeypatch):
    """A copy of the manifests, the tokenizer and one checkpoint's weights (``dpo``) that the
    course modules read instead of assets/."""
    zoo_dir, tok_dir = tmp_path / "zoo", tmp_path / "tokenizer"
    zoo_dir.mkdir()
    for f in paths.ZOO_DIR.glob("*.json"):
        shutil.copy(f, zoo_dir / f.name)
    shutil.copy(paths.ZOO_DIR / "dpo.safetensors", zoo_dir / "dpo.safetensors")
    shutil.copytree(paths.TOKENIZER_PATH.parent, tok_dir)
    monkeypatch.setattr(checkpoints, "ZOO_DIR", zoo_dir)
    for module in (shared_data, zoo):
        monkeypatch.setattr(module, "TOKENIZER_PATH", tok_dir / paths.TOKENIZER_PATH.name)
    shared_data.course_tokenizer.cache_clear()
    yield tmp_path
    shared_data.course_tokenizer.cache_clear()


def damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_is_a_problem_naming_the_file_and_the_fix(small_zoo):
    [ok] = doctor.check_assets(["dpo"])
    assert ok.status == OK and "1 checkpoints match" in ok.detail
    damage(small_zoo / "zoo" / "dpo.safetensors")
    [r] = doctor.check_assets(["dpo"])
    assert r.status == PROBLEM and str(small_zoo / "zoo" / "dpo.safetensors") in r.detail
    assert "sha256 differs" in r.detail and "git checkout -- assets/zoo/dpo.safetensors" in r.fix
    status, text = exit_status(r)
    assert status == 1 and "git checkout -- assets/zoo/dpo.safetensors" in text
    missing = doctor.check_assets(["dpo", "sft"])    # sft's weights were not copied
    assert [r.status for r in missing] == [PROBLEM, PROBLEM]
    assert "sft.safetensors is missing" in missing[1].detail
    assert "git checkout -- assets/zoo/sft.safetensors" in missing[1].fix


def test_a_damaged_tokenizer_or_manifest_is_a_problem(small_zoo):
    (small_zoo / "zoo" / "dpo.json").write_text("{")
    damage(small_zoo / "tokenizer" / "course.tiktoken")
    manifest, tokenizer = doctor.check_assets(["dpo"])
    assert manifest.status == PROBLEM and "dpo.json is not valid JSON" in manifest.detail
    assert "git checkout -- assets/zoo/dpo.json" in manifest.fix
    assert "git checkout" not in manifest.detail, "the fix is on its own line"
    assert tokenizer.status == PROBLEM and "course.tiktoken" in tokenizer.detail
    assert "git checkout -- assets/tokenizer" in tokenizer.fix


def test_low_memory_is_a_problem():
    r = doctor.check_memory(meminfo="MemTotal: 4000000 kB\nMemAvailable: 800000 kB\n", cgroup=())
    assert r.status == PROBLEM and "0.8 GB free" in r.detail and "1.5 GB" in r.detail
    assert "close other programs" in r.fix and "Binder" in r.fix
    assert exit_status(r)[0] == 1
    plenty = "MemAvailable: 16000000 kB\n"
    assert doctor.check_memory(meminfo=plenty, cgroup=()).status == OK
    binder = ("2147483648", "1900000000\n", "anon 1800000000\ninactive_file 0\n")
    limited = doctor.check_memory(meminfo=plenty, cgroup=binder)
    assert limited.status == PROBLEM and "container's limit" in limited.detail
    cached = ("2147483648", "1900000000\n", "inactive_file 1500000000\n")
    assert doctor.check_memory(meminfo=plenty, cgroup=cached).status == OK, "cache is freed"
    assert doctor.check_memory(meminfo=plenty, cgroup=("max\n", "5", "")).status == OK
    unknown = doctor.check_memory(meminfo="", cgroup=(), use_psutil=False)
    assert unknown.status == WARNING and "unknown" in unknown.detail


def test_no_chromium_is_only_a_warning(monkeypatch):
    monkeypatch.delenv("LLMTRAIN_CHROMIUM", raising=False)
    r = doctor.check_chromium(find=lambda: None)
    assert r.status == WARNING and "browser test" in r.detail
    assert "sudo apt-get install -y chromium" in r.fix
    status, text = exit_status(r)
    assert status == 0 and "0 problems, 1 warning: a chapter can run" in text
    monkeypatch.setenv("LLMTRAIN_CHROMIUM", "/nowhere/chromium")
    given = doctor.check_chromium()           # course.browser's own lookup
    assert given.status == WARNING and "LLMTRAIN_CHROMIUM=/nowhere/chromium" in given.detail


def test_little_disk_space_is_a_warning(tmp_path):
    r = doctor.check_disk(tmp_path, free_bytes=300_000_000)
    assert r.status == WARNING and "0.3 GB free" in r.detail and "--out" in r.fix
    assert doctor.check_disk(tmp_path, free_bytes=5_000_000_000).status == OK


def test_an_unwritable_runs_folder_is_a_warning_with_the_out_fix(tmp_path):
    (tmp_path / "file").write_text("in the way")
    r = doctor.check_writable(tmp_path / "file" / "runs")
    assert r.status == WARNING and "is a file" in r.detail
    assert "python -m llmtrain run --out /tmp/runs" in r.fix
    assert doctor.check_writable(tmp_path / "runs").status == OK
    assert not (tmp_path / "runs").exists(), "the doctor creates nothing"


def test_a_check_that_fails_itself_is_a_warning_and_the_others_still_run():
    def check_broken():
        raise RuntimeError("boom")

    out = io.StringIO()
    status = doctor.main([check_broken, lambda: doctor.check_python((3, 11, 0))], stream=out)
    text = out.getvalue()
    assert status == 0 and "not checked: the check failed (RuntimeError: boom)" in text
    assert "3.11.0" in text and "0 problems, 1 warning" in text


def test_the_output_has_a_header_a_line_per_check_and_a_summary():
    status, text = exit_status(Result(OK, "a", "fine"), Result(WARNING, "b", "meh", "do b"),
                               Result(PROBLEM, "c", "broken", "do c"))
    lines = text.splitlines()
    assert status == 1 and lines[0].startswith("llmtrain doctor:")
    assert lines[1].startswith("✔ a") and lines[2].startswith("⚠ b") and "fix:" in lines[3]
    assert lines[4].startswith("✘ c") and "do c" in lines[5]
    assert lines[-1] == "1 problem, 1 warning: a chapter cannot run: fix the problems above first"
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert doctor.symbols_for(ascii_out)[PROBLEM] == "[PROBLEM]", "a console without ✘"


@pytest.mark.slow
def test_doctor_on_this_machine_exits_0():
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    done = subprocess.run([sys.executable, "-m", "llmtrain", "doctor"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("llmtrain doctor:") and "a chapter can run" in lines[-1]
    for label in ("Python", "torch", "device", "Jupyter kernel", "kernel config", "widgets",
                  "assets", "memory", "disk", "Chromium", "runs folder"):
        assert any(line[2:].startswith(label) for line in lines), label


@pytest.mark.slow
def test_the_doctor_runs_when_torch_itself_cannot_be_imported():
    """The command line loads no torch before the doctor runs, so a broken install is reported,
    not a traceback."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from llmtrain.course.cli import main\n"
            "raise SystemExit(main(['doctor']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "torch" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_no_node_for_the_website_is_only_a_warning_with_the_install_line():
    from llmtrain.course import site

    r = doctor.check_website(problem=lambda: "Node.js is not installed; the website needs "
                                             "Node.js 18: sudo apt-get install -y nodejs")
    assert r.status == WARNING and "python -m llmtrain site" in r.detail
    assert "apt-get install -y nodejs" in r.fix
    old = doctor.check_website(problem=lambda: "Node.js 16.0.0 is not one Jupyter Book runs "
                                               "on; install Node.js 18, 20, or 22 or newer")
    assert old.status == WARNING and old.fix.startswith("install Node.js 18")
    here = doctor.check_website()
    if site.node_problem() is None:
        assert here.status == OK and "Node.js" in here.detail
    else:
        assert here.status == WARNING and here.fix

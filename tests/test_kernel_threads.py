"""The OpenMP wait policy in force in a kernel started the way JupyterLab starts one.

A chapter imports torch in its first cell, before llmtrain, so setting
OMP_WAIT_POLICY from llmtrain is too late for it. The course installs an IPython
kernel config (lib/kernel-config, via requirements.txt) that sets it when the
kernel starts. This test starts the kernelspec "python3" with an environment that
lacks the variable, imports torch first, as the chapters do, and reads what
OpenMP itself reports (OMP_DISPLAY_ENV=VERBOSE prints its settings to the
kernel's stderr when it starts): GOMP_SPINCOUNT is 0 when threads wait passively
and 300000 (or more) when they spin.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

CELL = ("import torch\n"
        "a = torch.ones(256, 256)\n"
        "b = (a @ a).sum() + torch.nn.functional.gelu(torch.ones(200_000)).sum()\n"
        "import os; print(os.environ.get('OMP_WAIT_POLICY'))")


def spin_count_in_kernel(tmp_path, **extra_env) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env.update(OMP_DISPLAY_ENV="VERBOSE", OMP_NUM_THREADS="2", **extra_env)
    log = tmp_path / "kernel-stderr.txt"
    km = jupyter_client.KernelManager(kernel_name="python3")
    with open(log, "w") as err:
        km.start_kernel(env=env, stderr=err)
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        printed = []
        reply = kc.execute_interactive(
            CELL, timeout=60,
            output_hook=lambda m: printed.append(m["content"].get("text", "")))
        assert reply["content"]["status"] == "ok", reply["content"]
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    text = log.read_text()
    found = re.search(r"GOMP_SPINCOUNT = '(\d+)'", text)
    assert found, f"OpenMP printed no settings (is torch built with GNU OpenMP?):\n{text[-2000:]}"
    return int(found.group(1)), "".join(printed).strip()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads GNU OpenMP's report (Linux)")
def test_a_new_kernel_waits_passively_even_when_torch_comes_first(tmp_path):
    spin, seen = spin_count_in_kernel(tmp_path)
    assert seen == "PASSIVE", (
        "the kernel started without OMP_WAIT_POLICY: install the course's kernel config "
        "(pip install -r requirements.txt installs ./lib/kernel-config into etc/ipython/)")
    assert spin == 0, f"OpenMP threads spin {spin} times before sleeping: training slows down " \
                      "many times on a busy machine"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads GNU OpenMP's report (Linux)")
def test_the_measurement_sees_spinning_threads(tmp_path):
    """The control: a user's own ACTIVE setting is kept (setdefault), and the report shows it."""
    spin, seen = spin_count_in_kernel(tmp_path, OMP_WAIT_POLICY="ACTIVE")
    assert seen == "ACTIVE" and spin > 0

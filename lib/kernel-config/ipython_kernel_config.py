# Installed by requirements.txt (./lib/kernel-config, a package of its own) into
# <environment>/etc/ipython/, where every IPython kernel of that environment reads it at
# start-up: the kernels that JupyterLab, Binder, plain papermill, nbconvert and nbval start,
# before any cell runs.
#
# Why: OpenMP threads that spin while they wait make small-model training many times slower
# on a busy CPU (measured on a shared 2-core machine: a cell of chapter 06 took 27 s instead
# of 0.8 s with one other busy process). Waiting passively costs nothing on an idle machine.
# OpenMP reads the setting once, when torch is first imported, so it has to be in the
# environment before any cell can import torch; `import llmtrain` is too late when a chapter
# imports torch first.
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

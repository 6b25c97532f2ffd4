"""llmtrain: the shared library of the course "How LLMs Are Trained".

A package per layer and per stage of the pipeline, so the folders read like
the course: ``core`` (the GPT, tokenizer, Trainer, losses) <- ``world`` (the
course world and its judge) <- the stages ``pretrain``, ``data``, ``align``,
``compress``, ``scale`` <- ``viz`` (pictures and playgrounds) <- ``course``
(checkpoints, chapters, coursework, the command line). Each layer imports only
the layers below it (tests/test_layers.py). The chapters import from here and
never the other way round. ``import llmtrain`` alone imports no torch, so it is cheap.
"""

import os

# OpenMP threads that spin while waiting make small-model training many times slower on
# a busy CPU (measured here: a nano step 1.5 s instead of 58 ms with 2 threads on a shared
# 2-core machine). Waiting passively costs nothing on an idle one. OpenMP reads this once,
# when torch loads, so for notebooks it is set earlier, by the kernel itself
# (lib/kernel-config); this line covers scripts that import llmtrain before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

"""llmtrain: the shared library of the course "How LLMs Are Trained".

One module per concept; the chapters import from here and never the other
way round. Heavy modules (torch) are imported lazily by the submodules that
need them, so ``import llmtrain`` is cheap.
"""

__version__ = "0.1.0"

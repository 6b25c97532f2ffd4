"""``%load_ext llmtrain.coursework``: the stable name of the coursework magic.

Student editions already handed out load the ``%%check`` magic by this name,
so it stays here; the code lives in ``llmtrain.course.coursework``.
"""

from .course.coursework import load_ipython_extension

__all__ = ["load_ipython_extension"]

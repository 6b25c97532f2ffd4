"""Running the course: checkpoints, chapters, coursework and the command line.

``paths``, ``recipes`` (what each checkpoint is trained from),
``checkpoints`` (loading, checked against manifests), ``shared_data`` (the
course tokenizer and data), ``zoo`` (building and verifying the
checkpoints), ``overview`` (chapter 00's pipeline on one page), ``chapter``
(parameter checks, claims, records, the section timer), ``coursework``
(exercises, nbgrader, the student edition), ``runner`` (headless runs),
``cli`` (``python -m llmtrain``) and ``browser`` (JupyterLab in Chromium).
The top layer: it may import every other one.
"""

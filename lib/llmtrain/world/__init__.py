"""The course world: the ground truth every experiment is checked against.

``fiction`` (the invented countries, cities and people; the pretraining text;
``course_world()``), ``facts`` (does a model know a fact?), ``corpora`` (real
text that ships with Python, and your own files), ``answers`` (questions,
reference answers and the answer checks) and ``judge`` (the hidden judge that
plays the human labeller). Imports only ``core``.

Used by chapters 01 and 04-15.
"""

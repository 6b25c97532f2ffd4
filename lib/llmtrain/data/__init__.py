"""The data stage: from a messy crawl to a training set, and what data does to a model.

``crawl`` (a web crawl with an answer key), ``dedup`` (exact and MinHash
near-dedup), ``quality`` (Gopher-style rules, PII, toxicity, a classifier),
``filtering`` (the pipeline and its funnel), ``effects`` (regurgitation,
learned falsehoods, mixing) and ``collapse`` (models trained on their
predecessors' text).

Used by chapters 05 and 15.
"""

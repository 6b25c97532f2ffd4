"""Pretraining: what a language model learns from text, and how fast.

``ngram`` (unigram and bigram baselines), ``compression`` (bits per byte,
gzip), ``optimizers`` (loss landscapes and the update rules of gradient
descent, momentum and Adam) and ``scaling`` (scaling laws, 6ND, published
runs).

Used by chapters 01, 02, 04 and 13.
"""

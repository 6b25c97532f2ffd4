"""Pretraining: what a language model learns from text, and how fast.

``ngram`` (unigram and bigram baselines), ``compression`` (bits per byte,
gzip), ``optimizers`` (loss landscapes and the update rules of gradient
descent, momentum and Adam), ``scaling`` (scaling laws, the IsoFLOP sweep, 6ND,
published runs) and ``own_text`` (a tiny GPT trained on a text of your own).

Used by chapters 01, 02, 04 and 13.
"""

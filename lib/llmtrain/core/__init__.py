"""The training core: what any language model in the course is made of and trained with.

``model`` (the GPT, its presets and KV cache), ``tokenizer`` (byte-level BPE,
exported as a tiktoken encoding), ``batches`` (token streams to batches,
held-out loss), ``train`` (the model-agnostic, GPU-aware ``Trainer``),
``losses`` (pure loss functions), ``generation`` (prompting with text),
``device`` (cuda > mps > cpu, precision, DDP set-up) and ``chat`` (the chat
template and loss masking). Imports nothing else from llmtrain.

Used by every chapter.
"""

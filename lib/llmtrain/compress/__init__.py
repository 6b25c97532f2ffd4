"""Making models cheaper: fewer bits, fewer trained parameters, smaller students.

``quant`` (absmax, zero-point, NF4, packing, ``QuantLinear``), ``lora``
(``LoRALinear``, QLoRA), ``brief_skill`` (the new skill chapter 11 teaches)
and ``distill`` (soft targets, students).

Used by chapters 10-12.
"""

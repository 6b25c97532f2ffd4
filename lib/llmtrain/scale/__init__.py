"""Training on many devices, and what a run costs.

``workers`` (worker processes in one gloo group, started from a notebook),
``allreduce`` (ring and naive all-reduce by hand), ``data_parallel`` (data
parallelism by hand and with DDP, accumulation, crash and resume),
``comm_cost`` (bytes and seconds per all-reduce, scaling) and ``run_cost``
(6ND, GPU peak, MFU, days, dollars, memory).

Used by chapter 13.
"""

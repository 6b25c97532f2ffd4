"""The communication cost model: bytes per step, alpha-beta times, scaling efficiency."""

from __future__ import annotations

import math

import pytest
import torch

from llmtrain.scale import comm_cost as comm
from llmtrain.scale.allreduce import simulate_ring_all_reduce


def test_ring_and_naive_bytes_by_hand():
    # 1,000 float32 values on 4 workers: each sends 2 * 3/4 * 4,000 bytes in the ring;
    # the naive server receives 3 gradients and sends 3 sums of 4,000 bytes each
    assert comm.ring_all_reduce_bytes(1000, 4) == 6000
    assert comm.naive_all_reduce_bytes(1000, 4) == 24000
    assert comm.ring_all_reduce_bytes(1000, 1) == 0 == comm.naive_all_reduce_bytes(1000, 1)
    assert comm.ring_all_reduce_bytes(10**6, 1024, 2) < 2 * 2 * 10**6  # never above 2 P b


@pytest.mark.parametrize("n_workers", [2, 3, 5, 8])
def test_the_simulated_ring_sends_what_the_formula_says(n_workers):
    values = 8 * 9 * 5 * 7  # divisible by every n_workers above
    tensors = [torch.randn(values) for _ in range(n_workers)]
    _, sent = simulate_ring_all_reduce(tensors)
    assert sent == [comm.ring_all_reduce_bytes(values, n_workers, 4)] * n_workers


def test_all_reduce_time_by_hand():
    # 2 workers, 1 MB, 1 GB/s, 1 ms per message: 2 messages, each worker sends 1 MB
    assert comm.all_reduce_seconds(1e6, 2, 1e9, 1e-3) == pytest.approx(2e-3 + 1e-3)
    assert comm.all_reduce_seconds(1e6, 1, 1e9, 1e-3) == 0.0
    # latency grows linearly with the ring, bandwidth time approaches 2 * bytes / beta
    assert comm.all_reduce_seconds(1e9, 1000, 1e9) == pytest.approx(2 * 999 / 1000)


def test_fit_alpha_beta_recovers_latency_and_bandwidth():
    sizes = [1e3, 1e5, 1e6, 1e7]
    times = [comm.all_reduce_seconds(b, 3, 2e9, 5e-5) for b in sizes]
    alpha, beta = comm.fit_alpha_beta(sizes, times, 3)
    assert alpha == pytest.approx(5e-5, rel=1e-6) and beta == pytest.approx(2e9, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 workers"):
        comm.fit_alpha_beta(sizes, times, 1)
    with pytest.raises(ValueError, match="2\\+ different sizes"):
        comm.fit_alpha_beta([1e3, 1e3], [1.0, 1.0], 2)


def test_scaling_with_a_fixed_global_batch_loses_efficiency():
    points = comm.data_parallel_scaling(1.0, 4e8, [1, 2, 8, 64, 512], bandwidth=12.5e9,
                                        latency=1e-5)
    assert points[0].efficiency == 1.0 and points[0].communication == 0.0
    eff = [p.efficiency for p in points]
    assert all(a > b for a, b in zip(eff, eff[1:]))
    p8 = points[2]  # by hand: compute 1/8 s, all-reduce 14 * 1e-5 + 14/8 * 0.032 s
    assert p8.compute == pytest.approx(0.125)
    assert p8.communication == pytest.approx(14e-5 + 14 / 8 * 4e8 / 12.5e9)
    assert p8.speedup == pytest.approx(1.0 / p8.step) and p8.efficiency == p8.speedup / 8


def test_without_gradients_to_send_scaling_is_perfect_and_overlap_hides_communication():
    assert all(p.efficiency == pytest.approx(1.0)
               for p in comm.data_parallel_scaling(1.0, 0.0, [1, 4, 64], 1e9))
    hidden = comm.data_parallel_scaling(1.0, 1e6, [4], 1e9, overlap=1.0)[0]
    assert hidden.communication == 0.0  # 1.5 ms of all-reduce behind 250 ms of compute
    exposed = comm.data_parallel_scaling(1e-3, 1e9, [4], 1e9, overlap=1.0)[0]
    assert exposed.communication == pytest.approx(1.5 - 2.5e-4)  # only compute can hide it
    grown = comm.data_parallel_scaling(1.0, 1e6, [1, 16], 1e9, fixed_global_batch=False)
    assert grown[1].speedup == pytest.approx(16 / (1 + 2 * 15 / 16 * 1e-3))


def test_workers_until_communication_dominates_matches_a_search():
    args = (1.0, 5e8, 12.5e9, 1e-5)
    n = comm.workers_until_comm_dominates(*args)
    brute = next(m for m in range(1, 10_000)
                 if (lambda p: p.communication >= p.compute)(
                     comm.data_parallel_scaling(args[0], args[1], [m], args[2], args[3])[0]))
    assert n == brute
    assert comm.workers_until_comm_dominates(1e6, 1.0, 1e12, max_workers=64) is None


@pytest.mark.parametrize("call", [
    lambda: comm.ring_all_reduce_bytes(100, 0),
    lambda: comm.ring_all_reduce_bytes(-1, 2),
    lambda: comm.all_reduce_seconds(1e6, 2, 0.0),
    lambda: comm.all_reduce_seconds(1e6, 2, 1e9, latency=math.nan),
    lambda: comm.data_parallel_scaling(1.0, 1e6, [2], 1e9, overlap=1.5),
    lambda: comm.data_parallel_scaling(0.0, 1e6, [2], 1e9),
])
def test_bad_inputs_say_what_to_change(call):
    with pytest.raises(ValueError, match="must"):
        call()


def test_interconnects_have_a_bandwidth_and_a_latency():
    for name, (bandwidth, latency) in comm.INTERCONNECTS.items():
        assert bandwidth > 1e8 and 0 < latency < 1e-3, name
    nvlink = comm.INTERCONNECTS["NVLink 4 (H100, per direction)"][0]
    assert nvlink > comm.INTERCONNECTS["100 Gb/s Ethernet"][0] * 30

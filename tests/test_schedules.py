"""The schedule descriptions and the ideal-time simulation against hand-worked examples: stage
layouts, the fewest microbatches, Megatron's interleaved order, and torch's action orders as
pipeline.csv's ideal reads them (bench/pipeline/rows.orders_of, ideal)."""

import math

import pytest

from bench.pipeline.rows import ideal, orders_of
from bench.schedules import SCHEDULES, interleaved_order, simulate


@pytest.mark.parametrize(
    "name, P, want",
    [
        ("gpipe", 4, [[0], [1], [2], [3]]),
        ("hand-1f1b", 2, [[0], [1]]),
        ("interleaved-1f1b", 3, [[0, 3], [1, 4], [2, 5]]),
        ("zb", 2, [[0, 2], [1, 3]]),
        ("zbv", 3, [[0, 5], [1, 4], [2, 3]]),
        ("dualpipev", 2, [[0, 3], [1, 2]]),
        ("one-process", 2, [[0], []]),
    ],
)
def test_stages_of_each_rank_by_hand(name, P, want):
    s = SCHEDULES[name]
    assert [s.stages(r, P) for r in range(P)] == want
    assert s.n_stages(P) == len([x for st in want for x in st])


@pytest.mark.parametrize(
    "name, P, fewest",
    [
        ("gpipe", 4, 1),
        ("1f1b", 3, 3),
        ("zbv", 2, 2),
        ("dualpipev", 2, 4),
        ("dualpipev", 3, 6),
        ("one-process", 2, 1),
    ],
)
def test_fewest_microbatches_by_hand(name, P, fewest):
    assert SCHEDULES[name].fewest_microbatches(P) == fewest


def test_interleaved_order_by_hand():
    """P = 2, v = 2, M = 4 (stages 0, 2 on rank 0; 1, 3 on rank 1), worked from Megatron's rule."""
    F, B = "F", "B"
    assert interleaved_order(0, 2, 4, 2) == [
        (0, F, 0),
        (0, F, 1),
        (2, F, 0),
        (2, F, 1),  # warm-up: (P - 0 - 1) 2 + (v - 1) P = 4
        (0, F, 2),
        (2, B, 0),
        (0, F, 3),
        (2, B, 1),
        (2, F, 2),
        (0, B, 0),
        (2, F, 3),
        (0, B, 1),
        (2, B, 2),
        (2, B, 3),
        (0, B, 2),
        (0, B, 3),
    ]
    assert interleaved_order(1, 2, 4, 2) == [
        (1, F, 0),
        (1, F, 1),  # warm-up: 2
        (3, F, 0),
        (3, B, 0),
        (3, F, 1),
        (3, B, 1),
        (1, F, 2),
        (1, B, 0),
        (1, F, 3),
        (1, B, 1),
        (3, F, 2),
        (3, B, 2),
        (3, F, 3),
        (3, B, 3),
        (1, B, 2),
        (1, B, 3),
    ]
    orders = {r: interleaved_order(r, 2, 4, 2) for r in range(2)}
    assert (
        simulate(
            orders,
            4,
            dict.fromkeys(range(4), 1.0),
            dict.fromkeys(range(4), 2.0),
            0.0,
            {0: 0, 1: 1, 2: 0, 3: 1},
        )
        > 0
    )


ZBV_ORDER = {  # torch's actions of a V schedule, P = 2, one microbatch: stages 0, 3 on rank 0; 1, 2 on rank 1
    "0": ["0F0", "0SEND_F0", "3RECV_F0", "3F0", "3I0", "3SEND_B0", "0RECV_B0", "0B0", "3W0"],
    "1": ["1RECV_F0", "1F0", "2F0", "2SEND_F0", "2RECV_B0", "2B0", "1B0", "1SEND_B0"],
}


def test_torch_action_orders_are_parsed_without_the_communication():
    orders, rank_of = orders_of({"schedule": "zbv", "order": ZBV_ORDER}, 2, 1)
    assert orders == {
        0: [(0, "F", 0), (3, "F", 0), (3, "I", 0), (0, "B", 0), (3, "W", 0)],
        1: [(1, "F", 0), (2, "F", 0), (2, "B", 0), (1, "B", 0)],
    }
    assert rank_of == {0: 0, 3: 0, 1: 1, 2: 1}
    overlap = {"0": ["(0F1;3B0)OVERLAP_F_B", "0REDUCE_GRAD"], "1": ["1UNSHARD", "1F0", "1RESHARD"]}
    assert orders_of({"schedule": "dualpipev", "order": overlap}, 2, 2)[0] == {
        0: [(0, "F", 1), (3, "B", 0)],
        1: [(1, "F", 0)],
    }
    assert orders_of({"schedule": "zbv", "order": {"0": ["0F0", "0WHAT0"], "1": []}}, 2, 1) is None


def test_ideal_of_a_torch_order_by_hand():
    """F 1 s, B 2 s (I and W half of it each), send 0.5 s: s0 F 0-1; s1 F 1.5-2.5; s2 F 2.5-3.5; s3 F
    4-5, I 5-6; s2 B 6.5-8.5; s1 B 8.5-10.5; s0 B 11-13; s3's W, deferred to the end, 13-14."""
    f, b = dict.fromkeys(range(4), 1.0), dict.fromkeys(range(4), 2.0)
    assert ideal({"schedule": "zbv", "order": ZBV_ORDER}, 2, 1, f, b, 0.5) == pytest.approx(14.0)
    assert math.isnan(ideal({"schedule": "zbv", "order": {"0": ["0X0"], "1": []}}, 2, 1, f, b, 0.5))


@pytest.mark.parametrize("name, M, want", [("one-process", 4, 3.0), ("one-process-accum", 4, 12.0)])
def test_ideal_of_one_process_is_its_compute(name, M, want):
    assert ideal({"schedule": name}, 1, M, {0: 1.0}, {0: 2.0}, 0.0) == want


def test_ideal_of_a_hand_schedule_follows_the_textbook_order():
    """hand-1f1b, P = 2, M = 2, F 1, B 2, no send: rank 0 F0 0-1, F1 1-2; rank 1 F0 1-2, B0 2-4,
    F1 4-5, B1 5-7; rank 0 B0 4-6, B1 7-9."""
    assert ideal(
        {"schedule": "hand-1f1b"}, 2, 2, {0: 1.0, 1: 1.0}, {0: 2.0, 1: 2.0}, 0.0
    ) == pytest.approx(9.0)


def test_a_deadlocking_order_is_refused():
    orders = {0: [(0, "B", 0), (0, "F", 0)], 1: [(1, "F", 0), (1, "B", 0)]}  # B before its own F
    with pytest.raises(ValueError, match="^the action orders deadlock$"):
        simulate(orders, 2, {0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0}, 0.0, {0: 0, 1: 1})


def test_a_one_stage_per_rank_schedule_uses_the_textbook_order_whatever_torch_reports():
    res = {"schedule": "1f1b", "order": {"0": ["0WHAT0"], "1": []}}
    orders, rank_of = orders_of(res, 2, 2)
    assert orders == {
        0: [(0, "F", 0), (0, "F", 1), (0, "B", 0), (0, "B", 1)],
        1: [(1, "F", 0), (1, "B", 0), (1, "F", 1), (1, "B", 1)],
    } and rank_of == {0: 0, 1: 1}


@pytest.mark.parametrize(
    "name, P, M, want",
    [
        ("zb", 2, 4, 0.0),
        ("dualpipev", 2, 4, 0.0),
        ("zbv", 2, 4, 0.0),
        ("zbv", 2, 2, 1 / 3),
        ("dualpipev", 3, 5, 2 / 7),
        ("interleaved-1f1b", 2, 4, 1 / 9),
        ("hand-gpipe", 4, 4, 3 / 7),
    ],
)
def test_theory_bubble_of_every_kind_by_hand(name, P, M, want):
    assert SCHEDULES[name].theory_bubble(P, M) == pytest.approx(want)


def test_hand_orders_by_hand():
    from bench.schedules import hand_order

    assert hand_order("hand-gpipe", 1, 2, 3) == [
        ("F", 0),
        ("F", 1),
        ("F", 2),
        ("B", 0),
        ("B", 1),
        ("B", 2),
    ]
    assert hand_order("hand-1f1b", 0, 3, 4) == [
        ("F", 0),
        ("F", 1),
        ("F", 2),
        ("B", 0),
        ("F", 3),
        ("B", 1),
        ("B", 2),
        ("B", 3),
    ]
    assert hand_order("1f1b", 2, 3, 4) == [
        ("F", 0),
        ("B", 0),
        ("F", 1),
        ("B", 1),
        ("F", 2),
        ("B", 2),
        ("F", 3),
        ("B", 3),
    ]

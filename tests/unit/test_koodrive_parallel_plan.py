"""The KooDrive client's plan of parallel parts (pure logic): when it is
made, and that it keeps the reference's part rules."""

from __future__ import annotations

from cloudfs.client.koodrive.dialect import parallel_plan
from cloudfs.client.sha256state import HashStates

MIB, GB = 1 << 20, 1 << 30
STEP = 8 * MIB


def states(size: int, step: int = STEP) -> HashStates:
    """Made-up states (the plan only places them): state k is k as hex."""
    return HashStates(size, "0" * 64, step, tuple(f"{k:064x}" for k in range(size // step + 1)))


def test_one_part_a_single_part_at_a_time_or_no_states_stay_sequential():
    assert parallel_plan(8 * MIB, states(8 * MIB), 4) is None  # one part
    assert parallel_plan(40 * MIB, states(40 * MIB), 1) is None  # one part at a time allowed
    assert parallel_plan(40 * MIB, HashStates(40 * MIB, "0" * 64), 4) is None  # no libcrypto
    assert parallel_plan(40 * MIB, states(41 * MIB), 4) is None  # states of other content


def test_parts_follow_the_rules():
    size = 8 * MIB + 1
    plan = parallel_plan(size, states(size), 4)
    assert plan == [{"partNumber": 1, "partSize": 8 * MIB, "partOffset": 0},
                    {"partNumber": 2, "partSize": 1, "partOffset": 8 * MIB, "hashCtx": f"{1:064x}"}]


def test_a_huge_file_keeps_within_ten_thousand_parts():
    size = 150 * GB + 12345
    plan = parallel_plan(size, states(size), 4)
    assert plan is not None and len(plan) <= 10_000
    part = plan[0]["partSize"]
    assert part % STEP == 0 and 5 * MIB <= part <= 5 * GB
    assert all(p["partSize"] == part for p in plan[:-1]) and sum(p["partSize"] for p in plan) == size
    assert all(p["hashCtx"] == f"{p['partOffset'] // STEP:064x}" for p in plan[1:])

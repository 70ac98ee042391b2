"""bench.mutation's sampling: the draw is the same for the same mutants in any order, and the
score's interval is Wilson's (checked against values computed by hand)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from bench.mutation import REPO, draw_sample, only, score_line, wilson_interval

NAMES = [f"transforms.tree.x_f__mutmut_{i}" for i in range(1, 41)]


def test_a_sample_is_the_same_draw_whatever_order_the_mutants_are_listed_in():
    first = draw_sample(NAMES, 10, seed=3)
    assert first == draw_sample(list(reversed(NAMES)), 10, seed=3)
    assert len(set(first)) == 10 and set(first) <= set(NAMES) and first == sorted(first)
    assert draw_sample(NAMES, 10, seed=4) != first
    assert draw_sample(NAMES, 100, seed=3) == sorted(NAMES)  # a sample larger than the mutants is all of them


def test_the_wilson_interval_of_a_score():
    # 90 of 100: p = 0.9, z = 1.96 -> (0.8256, 0.9448) by the formula on paper
    low, high = wilson_interval(90, 100)
    assert low == pytest.approx(0.82563, abs=1e-5) and high == pytest.approx(0.94477, abs=1e-5)
    # every mutant killed: the interval still reaches below 1
    low, high = wilson_interval(50, 50)
    assert high == pytest.approx(1.0) and low == pytest.approx(0.92865, abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_a_sampled_score_counts_only_the_sample_and_says_so():
    by_status = {"killed": NAMES[:30], "survived": NAMES[30:35], "no tests": NAMES[35:]}
    sample = NAMES[25:35]
    line = score_line("transforms/*", only(by_status, sample), sample_of=40)
    assert line == (
        "transforms/*: 5 killed, 5 survived, no other outcome, 0 not checked of 10 sampled of 40 mutants;"
        " score 50.0% of those checked (95% interval 23.7-76.3%)"
    )
    assert score_line("db/load.py", by_status) == "db/load.py: 30 killed, 5 survived, {'no tests': 5}, 0 not checked of 40; score 75.0% of those checked"


def test_a_recheck_overturns_survivors_and_timeouts_only(tmp_path):
    from bench.mutation import AT_IMPORT, with_import_outcomes

    (tmp_path / AT_IMPORT).write_text(json.dumps({"m_1": "killed", "m_2": "survived", "m_3": "killed", "m_4": "survived"}))
    by_status = {"survived": ["m_1", "m_2", "m_9"], "timeout": ["m_3"], "killed": ["m_4"], "no tests": ["m_5"]}
    # m_4 was killed by mutmut itself: a recorded recheck does not revive it
    assert with_import_outcomes(tmp_path, by_status) == {"survived": ["m_9", "m_2"], "killed": ["m_4", "m_1", "m_3"], "no tests": ["m_5"]}


FORKED_AFTER_COLLECTION = """
import os, sys
import pytest
pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-n", "0", *sys.argv[1:]])
pid = os.fork()
if pid == 0:
    code = pytest.main(["-q", "-x", "-p", "no:cacheprovider", "-n", "0", "-p", "no:randomly", "tests/transforms/test_history.py"])
    os._exit(int(code))
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_worker_forked_after_collecting_the_transforms_tests_can_still_run_polars():
    # mutmut collects the tests once and forks a worker per mutant. A test module that built a
    # Polars frame at import (tests/transforms/test_explain.py did) left the forked workers
    # hanging on their first Polars call: every mutant reported as a timeout.
    # A session of its own, so that a hung worker (the fork's child) is killed with its parent.
    process = subprocess.Popen(
        [sys.executable, "-c", FORKED_AFTER_COLLECTION, "tests/transforms", "tests/test_scenarios.py"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("a worker forked after collection hung running tests/transforms/test_history.py (a test module computes with Polars at import?)")
    assert process.returncode == 0, out[-2000:] + err[-2000:]

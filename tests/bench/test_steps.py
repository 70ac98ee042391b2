"""``bench.steps`` times a run's steps without changing what the run does (no timing asserted)."""

from __future__ import annotations

from bench import pipeline
from bench.steps import STEPS, step_name, steps_line
from db.demo import ROOT_TELEGRAM_ID, generate_and_load
from flows.config import load_plan


def test_every_step_of_a_first_run_is_timed_and_the_run_still_proves_out(db):
    generate_and_load(db, users=200, months=2, seed=3, purchases_per_user=1.0, end_month=pipeline.PERIOD)
    originals = {step_name(m, f): getattr(m, f) for m, f in STEPS}

    timed = pipeline.timed_run(db, load_plan(), ROOT_TELEGRAM_ID, steps=True)
    # A first nightly run writes everyone, memoizes its months and verifies: every step ran,
    # and what the wrapped steps stored was proved equal to what was computed.
    assert set(timed["steps"]) == set(originals)
    assert timed["outcome"].users_written == 200 and timed["outcome"].verified
    assert steps_line(timed["steps"]).startswith("extract.purchase_months ")
    # the wrappers are gone after the block
    assert {step_name(m, f): getattr(m, f) for m, f in STEPS} == originals

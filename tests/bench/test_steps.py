"""``bench.steps`` times a run's steps without changing what the run does (no timing asserted)."""

from __future__ import annotations

from bench import pipeline
from bench.steps import STEPS, step_name, steps_line, timed_steps
from db.demo import ROOT_TELEGRAM_ID, generate_and_load
from flows.config import load_plan


def stored_documents(db) -> list[tuple]:
    with db.connect_raw() as connection:
        return connection.execute(
            """SELECT "userID", "rank", "fullVolume", "mlmStatus"::jsonb - 'calculatedAt', "totalVolume"::jsonb - 'calculatedAt' - 'runId'
               FROM users ORDER BY 1"""
        ).fetchall()


def test_every_step_of_a_first_and_a_nightly_run_is_timed_and_the_run_is_unchanged(db):
    generate_and_load(db, users=200, months=2, seed=3, purchases_per_user=1.0, end_month=pipeline.PERIOD)
    plan = load_plan()
    originals = {step_name(m, f): getattr(m, f) for m, f in STEPS}

    first = pipeline.timed_run(db, plan, ROOT_TELEGRAM_ID, steps=True)
    # A first nightly run writes everyone and memoizes its months: every step ran.
    assert set(first["steps"]) == set(originals)
    assert first["outcome"].users_written == 200 and first["outcome"].verified
    assert all(seconds >= 0 for seconds in first["steps"].values())
    assert steps_line(first["steps"]).startswith("extract.purchase_months ")
    # the wrappers are gone after the block
    assert {step_name(m, f): getattr(m, f) for m, f in STEPS} == originals

    # An untimed run finds nothing to write: the timed one stored what the run computes.
    stored = stored_documents(db)
    second = pipeline.timed_run(db, plan, ROOT_TELEGRAM_ID, steps=False)
    assert second["steps"] == {}
    assert second["outcome"].users_written == 0
    assert stored_documents(db) == stored

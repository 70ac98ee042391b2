"""explain USER_ID: one user's numbers from its subtree and chain, equal to the nightly run's."""

from __future__ import annotations

import polars as pl
import pytest

from db import extract
from db import subtree as reads
from flows.config import load_plan
from flows.explain import UnknownUser, explain, explain_lines
from tests.flows.scenario_db import load_scenario, tables_fingerprint
from transforms.documents import Provenance
from transforms.recompute import period_of, recompute


def _explain(db, scenario, user_id):
    plan = load_plan().with_overrides(scenario.plan)
    return explain(db, plan, user_id, as_of=scenario.as_of, period=period_of(scenario.as_of), root_telegram_id=scenario.root_telegram_id)


def _requirement(report, rank, name):
    ranks = {r["rank"]: r for r in report["ranks"]}
    return {r["requirement"]: r for r in ranks[rank]["requirements"]}[name]


def test_explain_gives_the_scenarios_numbers_and_what_blocks_the_next_rank(db):
    scenario = load_scenario(db, "ranks")
    before = tables_fingerprint(db)

    builder = _explain(db, scenario, 2)
    # scenario ranks, user 2: builder, 2 active partners, qualifying 56000.00 toward growth (cap 125000.00)
    assert builder["held_rank"]["rank"] == "builder" and builder["active_partners"]["count"] == 2
    assert builder["active_partners"]["user_ids"] == [3, 4]
    assert builder["toward_next_rank"] | {"branches": None} == {
        "next_rank": "growth", "required": "250000.00", "leg_cap": "125000.00", "qualifying_volume": "56000.00", "gap": "194000.00", "branches": None,
    }  # fmt: skip
    assert builder["sponsor_chain"] == [{"levels_up": 1, "user_id": 1, "telegram_id": 9000, "depth": 0}]
    # growth needs 2500.00 personal, 250000.00 qualifying, 5 partners: all three are short
    blocking = builder["blocking"]
    assert blocking["rank"] == "growth"
    assert {r["requirement"]: r["missing"] for r in blocking["unmet"]} == {"personal_volume": "1500.00", "qualifying_volume": "194000.00", "active_partners": 3}
    assert any("blocking growth: personal volume short by 1500.00" in line for line in explain_lines(builder))

    inactive = _explain(db, scenario, 5)
    # user 5 bought in September only: meets builder's three requirements but is not active in October
    assert inactive["personal"]["is_active"] is False and inactive["personal"]["period_pv"] == "0.00"
    assert {r["rank"]: r["qualifies"] for r in inactive["ranks"]}["builder"] is True
    assert inactive["held_rank"]["rank"] == "start" and "promotion only while active" in inactive["held_rank"]["rule"]
    assert inactive["blocking"] == {"rank": "builder", "unmet": [], "needs_activity": True}
    assert inactive["personal"]["monthly_pv"] == [{"month": "2025-09", "pv": "1000.00"}]

    growth = _explain(db, scenario, 8)
    assert growth["held_rank"]["rank"] == "growth" and growth["active_partners"]["count"] == 5
    assert growth["personal"]["full_volume"] == "270000.00" and growth["toward_next_rank"]["leg_cap"] == "500000.00"
    assert _requirement(growth, "leadership", "personal_volume")["missing"] == "2500.00"

    assigned = _explain(db, scenario, 14)
    assert assigned["held_rank"]["rank"] == "growth" and "ranks never go down" in assigned["held_rank"]["rule"]
    assert "assigned by hand" in assigned["held_rank"]["rule"]

    # nothing stored yet: drift names the keys, stored against what the sources say
    drift = {d["key"]: d for d in builder["drift"]}
    assert drift["rank"] == {"key": "rank", "stored": "start", "computed": "builder", "equal": False}
    assert str(drift["fullVolume"]["computed"]) == "56000.00" and not drift["fullVolume"]["equal"]
    assert tables_fingerprint(db) == before  # read-only


def _nightly_state(db, scenario, *, with_inputs=False):
    plan = load_plan().with_overrides(scenario.plan)
    inputs, _ = extract.inputs(db, scenario.as_of, plan.pioneer_min_purchase_cents)
    provenance = Provenance(run_id=0, plan_version=plan.version, as_of=scenario.as_of, calculated_at=scenario.as_of)
    state = recompute(inputs, plan, period=period_of(scenario.as_of), root_telegram_id=scenario.root_telegram_id, provenance=provenance).state
    return (state, inputs) if with_inputs else state


def _monthly_pv(inputs, user_id):
    months = inputs.monthly_volumes.filter(user_id=user_id).sort("month")
    return [{"month": m.strftime("%Y-%m"), "pv": f"{v / 100:.2f}"} for m, v in months.select("month", "volume_cents").iter_rows()]


@pytest.mark.parametrize("name", ["ranks", "pioneers", "active_partners_direct", "fifty_percent_rule"])
def test_explain_equals_the_nightly_computation_for_every_user(db, name):
    scenario = load_scenario(db, name)
    state, inputs = _nightly_state(db, scenario, with_inputs=True)
    users = state if state.height <= 20 else state.sample(n=4, seed=7)  # a few users of the largest
    for row in users.iter_rows(named=True):
        report = _explain(db, scenario, row["user_id"])
        assert report["personal"]["monthly_pv"] == _monthly_pv(inputs, row["user_id"]), row["user_id"]
        assert report["held_rank"]["rank"] == row["rank"], row["user_id"]
        assert report["personal"]["is_active"] == row["is_active"]
        assert report["active_partners"]["count"] == row["active_partners"]
        assert report["personal"]["full_volume"] == f"{row['full_volume_cents'] / 100:.2f}"
        assert report["toward_next_rank"]["qualifying_volume"] == f"{row['qualifying_volume_cents'] / 100:.2f}"
        assert report["pioneer"].get("number") == row["pioneer_number"], row["user_id"]
        if row["active_partners"] <= 20 and not row["is_root"]:
            assert len(report["active_partners"]["user_ids"]) == row["active_partners"]


def test_explain_pioneers_number_company_wide_and_say_why_not(db):
    scenario = load_scenario(db, "pioneers")
    first = _explain(db, scenario, 2)  # a stored grant: keeps number 1
    assert first["pioneer"] | {"why": None} == {
        "slots": 50, "pioneers": 50, "min_purchase": "5000.00", "is_pioneer": True, "number": 1, "purchase_id": 20,
        "granted_at": "2025-09-01T10:00:00", "why": None,
    }  # fmt: skip
    tie = _explain(db, scenario, 11)  # same time as user 10, lower purchaseID: numbered first
    assert (tie["pioneer"]["number"], tie["pioneer"]["purchase_id"]) == (9, 95)
    late = _explain(db, scenario, 52)
    assert late["pioneer"]["is_pioneer"] is False and late["pioneer"]["candidate"]["purchase_id"] == 520
    assert "taken the 50 slots" in late["pioneer"]["why"]
    below = _explain(db, scenario, 54)  # 4999.99: never a candidate
    assert below["pioneer"]["candidate"] is None and "no single purchase of at least 5000.00" in below["pioneer"]["why"]


@pytest.mark.parametrize("rows_per_open_slot, tries_read, late_why", [
    (0, ["1", "8", "64"], "candidates came before it"),  # grows past one user a try; ends having read all
    (1, ["49"], "earlier candidates (the last: purchaseID"),  # one row per open slot: the head only, late users after it
])  # fmt: skip
def test_explain_reads_only_the_head_of_the_pioneer_order_and_still_numbers_as_the_nightly_run(db, monkeypatch, rows_per_open_slot, tries_read, late_why):
    """With the head of the pioneer order read a few rows at a time, every user's pioneer status
    is still the nightly run's; a candidate after the head is told by the last new grant, not by
    a count nobody read."""
    scenario = load_scenario(db, "pioneers")
    monkeypatch.setattr(reads, "FIRST_LIMIT", 1)
    monkeypatch.setattr(reads, "ROWS_PER_OPEN_SLOT", rows_per_open_slot)
    tries = []
    real_frame = extract._frame

    def counted_frame(cursor, sql, *rest):
        if "LIMIT" in sql:
            tries.append(sql.split("LIMIT")[1].strip())
        return real_frame(cursor, sql, *rest)

    monkeypatch.setattr(extract, "_frame", counted_frame)
    state = _nightly_state(db, scenario)
    # the stored grant, the tie, the last slots and those after them, and every sixth user
    some = state.filter((pl.col("user_id") % 6 == 0) | pl.col("user_id").is_in([2, 10, 11, 49, 50, 51, 52, 53, 54]))
    for row in some.iter_rows(named=True):
        tries.clear()
        report = _explain(db, scenario, row["user_id"])
        assert report["pioneer"].get("number") == row["pioneer_number"], row["user_id"]
        assert report["pioneer"]["pioneers"] == state["pioneer_number"].count()
    tries.clear()
    late = _explain(db, scenario, 52)
    assert tries == tries_read
    assert late["pioneer"]["candidate"]["purchase_id"] == 520 and late_why in late["pioneer"]["why"]
    assert "taken the 50 slots" in late["pioneer"]["why"]
    assert ("candidates came before it" in late["pioneer"]["why"]) == (rows_per_open_slot == 0)


def test_explain_reads_no_pioneer_order_when_the_stored_grants_hold_every_slot(db, monkeypatch):
    scenario = load_scenario(db, "pioneers")  # one stored grant (userID 2)
    plan = load_plan().with_overrides({**scenario.plan, "pioneer_slots": 1})
    monkeypatch.setattr(extract, "_frame", _refusing_limits(extract._frame))
    late = explain(db, plan, 52, as_of=scenario.as_of, period=period_of(scenario.as_of), root_telegram_id=scenario.root_telegram_id)
    assert late["pioneer"]["pioneers"] == 1 and late["pioneer"]["is_pioneer"] is False
    assert "came after 1 stored grants had taken the 1 slots" in late["pioneer"]["why"], late["pioneer"]["why"]


def _refusing_limits(frame):
    def refusing(cursor, sql, *rest):
        assert "LIMIT" not in sql, "the pioneer order was read though no slot is open"
        return frame(cursor, sql, *rest)

    return refusing


def test_explain_of_an_orphan_and_of_an_unknown_user(db):
    scenario = load_scenario(db, "bad_orphan")
    orphan = scenario.expect_error["ids"][0]
    report = _explain(db, scenario, orphan)
    assert report["in_tree"] is False and [p["kind"] for p in report["problems"]] == ["orphan"]
    with pytest.raises(UnknownUser, match="no user has userID 999999"):
        _explain(db, scenario, 999_999)


def test_explain_cli_prints_json(db, monkeypatch, capsys):
    import json

    from flows.cli import main

    scenario = load_scenario(db, "fifty_percent_rule")
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(scenario.root_telegram_id))
    assert main(["explain", "2", "--as-of", "2025-10-20T00:00:00Z", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # scenario fifty_percent_rule: the 40500.00 leg counts 25000.00 toward builder
    assert report["toward_next_rank"]["branches"][0] == {"referral_user_id": 3, "full_volume": "40500.00", "capped_volume": "25000.00", "is_capped": True}
    assert report["toward_next_rank"]["qualifying_volume"] == "41000.00" and report["toward_next_rank"]["gap"] == "9000.00"

"""The plan file: loaded typed, overridden like scenarios do, refused naming the exact field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flows.config import DEFAULT_PLAN, load_plan
from transforms.plan import PlanError, plan_from_mapping


def test_default_plan_holds_the_production_values():
    plan = load_plan(DEFAULT_PLAN)
    assert plan.rank_names == ["start", "builder", "growth", "leadership", "director"]
    assert [r.team_volume_cents for r in plan.ranks] == [0, 5_000_000, 25_000_000, 100_000_000, 500_000_000]
    assert [r.personal_volume_cents for r in plan.ranks] == [0, 100_000, 250_000, 500_000, 1_000_000]
    assert [r.active_partners for r in plan.ranks] == [0, 2, 5, 10, 15]
    assert [r.rate for r in plan.ranks] == [Decimal(x) for x in ("0.04", "0.08", "0.12", "0.15", "0.18")]
    assert (plan.min_monthly_pv_cents, plan.leg_cap_ratio, plan.max_depth) == (20_000, Decimal("0.5"), 50)
    assert (plan.pioneer_slots, plan.pioneer_min_purchase_cents) == (50, 500_000)
    assert plan.active_partners_scope == "downline"
    assert plan.promote_only_active and plan.root_takes_no_rank_checks
    assert [plan.leg_cap_cents(r) for r in plan.ranks] == [0, 2_500_000, 12_500_000, 50_000_000, 250_000_000]


def test_overrides_apply_on_top():
    plan = load_plan().with_overrides({"max_depth": None, "active_partners_scope": "direct"})
    assert plan.max_depth is None and plan.active_partners_scope == "direct"
    assert plan.rank_names == load_plan().rank_names


@pytest.mark.parametrize(
    "override, field",
    [
        ({"active_partners_scope": "team"}, "active_partners_scope"),
        ({"max_depth": 0}, "max_depth"),
        ({"leg_cap_ratio": "1.5"}, "leg_cap_ratio"),
        ({"min_monthly_pv": "200.001"}, "min_monthly_pv"),
        ({"min_monthly_pv": 200.5}, "min_monthly_pv"),  # floats are refused: money stays exact
        ({"min_monthly_pv": True}, r"plan.min_monthly_pv: must be a number written as a string, not true or false, got True"),
        ({"min_monthly_pv": 200.5}, r'^plan.min_monthly_pv: write it as a string \("200.5"\) so it stays exact, got 200.5$'),
        ({"max_depth": "deep"}, r'plan.max_depth: must be a whole number >= 1 or "unlimited"'),
        ({"pioneer_slots": -1}, "pioneer_slots"),
        ({"promote_only_active": "yes"}, "promote_only_active"),
        ({"colour": "red"}, "unknown field"),
        ({"ranks": []}, "plan.ranks"),
        ({"ranks": [{"name": "start", "rate": "0", "personal_volume": "1", "team_volume": "0", "active_partners": 0}]}, r"plan.ranks\[0\]"),
        ({"version": "2025.1\nsecond line"}, "plan.version"),
        ({"version": "v\x00"}, "plan.version"),
        ({"version": "v" * 101}, "plan.version"),
    ],
)
def test_bad_plans_are_refused_naming_the_field(override, field):
    with pytest.raises(PlanError, match=field):
        load_plan().with_overrides(override)


def test_unlimited_depth_is_no_limit():
    assert load_plan().with_overrides({"max_depth": "unlimited"}).max_depth is None


def test_a_repeated_rank_name_is_refused_naming_the_first():
    ranks = load_plan().to_mapping()["ranks"]
    with pytest.raises(PlanError, match=r"^plan.ranks\[2\].name: repeats the name of ranks\[1\], got 'builder'$"):
        load_plan().with_overrides({"ranks": [ranks[0], ranks[1], dict(ranks[1])]})


def test_a_missing_field_and_a_rank_that_is_no_table_are_named():
    data = load_plan().to_mapping()
    del data["version"]
    with pytest.raises(PlanError, match=r"^plan: missing field\(s\) \['version'\]$"):
        plan_from_mapping(data)
    data = load_plan().to_mapping()
    data["ranks"] = [data["ranks"][0], "x"]
    with pytest.raises(PlanError, match=r"^plan.ranks\[1\]: input should be a valid dictionary or instance of Rank, got 'x'$"):
        plan_from_mapping(data)


def test_a_list_whose_only_item_failed_says_only_what_is_wrong_with_the_item():
    # pydantic also reports the list as too short (no valid item left): that echo is dropped
    entry = load_plan().to_mapping()["ranks"][0]
    with pytest.raises(PlanError) as refused:
        load_plan().with_overrides({"ranks": [dict(entry, name="Bad Name")]})
    assert str(refused.value) == "plan.ranks[0].name: string should match pattern '^[a-z][a-z0-9_]*$', got 'Bad Name'"
    assert refused.value.fields == ("plan.ranks[0].name",)
    with pytest.raises(PlanError) as refused:
        load_plan().with_overrides({"ranks": []})  # a list too short of itself is said
    assert str(refused.value) == "plan.ranks: must hold at least 1 item(s), got []"


def test_a_bad_plan_file_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('version = "x"\nmax_depth = "deep"\n')
    with pytest.raises(PlanError, match="broken.toml"):
        load_plan(path)
    with pytest.raises(PlanError, match="not found"):
        load_plan(tmp_path / "missing.toml")


@pytest.mark.parametrize("field", ["personal_volume", "team_volume", "active_partners"])
def test_a_rank_that_requires_less_than_the_rank_below_it_is_refused(field):
    ranks = load_plan().to_mapping()["ranks"]
    growth = next(r for r in ranks if r["name"] == "growth")
    growth[field] = 1 if field == "active_partners" else "1.00"
    with pytest.raises(PlanError, match=rf"plan.ranks\[2\].{field} \(growth\): requires less than the rank below it \(builder\)"):
        load_plan().with_overrides({"ranks": ranks})

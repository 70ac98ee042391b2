"""tree USER_ID --depth N: the downline in tree order, largest branches first."""

from __future__ import annotations

from flows.config import load_plan
from flows.tree_view import tree_lines, tree_report
from tests.flows.scenario_db import load_scenario
from transforms.recompute import period_of


def _tree(db, scenario, user_id, depth):
    plan = load_plan().with_overrides(scenario.plan)
    return tree_report(db, plan, user_id, depth, as_of=scenario.as_of, period=period_of(scenario.as_of), root_telegram_id=scenario.root_telegram_id)


def test_the_downline_is_listed_largest_branch_first_to_the_depth_asked(db):
    scenario = load_scenario(db, "ranks")
    report = _tree(db, scenario, 1, 2)
    # the root's branches: 8 (272500.00), 2 and 5 (57000.00 each, by userID), 14 and 15 (300.00)
    assert [(m["user_id"], m["level"]) for m in report["members"]] == [
        (1, 0), (8, 1), (9, 2), (10, 2), (2, 1), (3, 2), (4, 2), (5, 1), (6, 2), (7, 2), (14, 1), (15, 1),
    ]  # fmt: skip
    eight = report["members"][1]
    assert eight == {"user_id": 8, "level": 1, "rank": "growth", "is_active": True, "pv": "2500.00",
                     "full_volume": "270000.00", "branch_volume": "272500.00", "direct_referrals": 2}  # fmt: skip
    lines = tree_lines(_tree(db, scenario, 8, 1))
    assert lines[1:] == ["  8 growth active PV 2500.00 full volume 270000.00",
                         "    9 start active PV 100000.00 full volume 40000.00",
                         "    10 start active PV 100000.00 full volume 30000.00"]  # fmt: skip

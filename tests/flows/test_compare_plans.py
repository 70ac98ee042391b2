"""compare-plans: both plans over the same inputs, read once; nothing written."""

from __future__ import annotations

import json

import pytest

from flows.compare_plans import compare, compare_files
from flows.config import load_plan
from tests.flows.scenario_db import load_scenario, tables_fingerprint
from transforms.recompute import period_of


def _builder_at(team_volume: str, version: str, folder):
    """The default plan with builder's team-volume requirement changed (its leg cap follows)."""
    mapping = load_plan().to_mapping()
    mapping["version"] = version
    mapping["ranks"][1]["team_volume"] = team_volume
    path = folder / f"{version}.toml"
    lines = [f'{k} = {json.dumps(v)}' for k, v in mapping.items() if k != "ranks"]
    for rank in mapping["ranks"]:
        lines += ["[[ranks]]", *(f"{k} = {json.dumps(v)}" for k, v in rank.items())]
    path.write_text("\n".join(lines) + "\n")
    return load_plan(path)


def _compare(db, scenario, other):
    return compare(db, load_plan(), other, as_of=scenario.as_of, period=period_of(scenario.as_of), root_telegram_id=scenario.root_telegram_id)


def test_the_same_plan_differs_nowhere_and_writes_nothing(db, tmp_path):
    scenario = load_scenario(db, "ranks")
    before = tables_fingerprint(db)
    report = _compare(db, scenario, _builder_at("50000", "same-as-default", tmp_path))
    assert report["differences"]["users"] == 0 and report["movers"] == []
    assert all(r["change"] == 0 for r in report["per_rank"]) and report["inputs_read"] == 1
    counts = report["transitions"]["counts"]
    assert sum(counts[i][i] for i in range(len(counts))) == report["users_compared"] == 15
    files = compare_files(report, tmp_path / "out")
    assert "**0 users would differ**" in open(files["markdown"]).read()
    assert tables_fingerprint(db) == before


def test_raising_builders_threshold_names_exactly_the_users_it_moves(db, tmp_path):
    scenario = load_scenario(db, "ranks")
    before = tables_fingerprint(db)
    report = _compare(db, scenario, _builder_at("60000", "builder-60k", tmp_path))
    by_value = report["differences"]["by_value"]
    # Builder at 60000.00 caps a leg at 30000.00. User 2's legs 30000 + 26000 give 56000 < 60000:
    # it no longer rises to builder (users 8 and 15 keep growth and builder, user 5 is inactive).
    assert by_value["rank"] == {"users": 1, "user_ids": [2]}
    # Toward builder (the next rank of users holding start) a leg now counts up to 30000 instead
    # of 25000: user 1 (legs 272500, 57000, 57000, 300, 300: 75600 -> 90600), user 5 (30000 +
    # 26000: 50000 -> 56000), user 10 (one leg of 30000: 25000 -> 30000). User 9's legs of 20000
    # are under both caps; user 2 works toward growth now and builder then: 56000 either way.
    assert by_value["qualifying_volume_cents"] == {"users": 3, "user_ids": [1, 5, 10]}
    assert by_value["is_active"]["users"] == by_value["is_pioneer"]["users"] == 0
    assert {r["rank"]: r["change"] for r in report["per_rank"]} == {"start": 1, "builder": -1, "growth": 0, "leadership": 0, "director": 0}
    assert report["transitions"]["counts"][1][0] == 1  # builder -> start
    assert report["movers"][0] | {"qualifying_volume": None} == {
        "user_id": 2, "rank": "builder", "rank_other": "start", "rank_steps": -1, "qualifying_volume": None, "qualifying_volume_other": "56000.00",
    }  # fmt: skip
    files = compare_files(report, tmp_path / "out")
    assert "**4 users would differ**" in open(files["markdown"]).read()
    assert json.loads(open(files["json"]).read())["differences"]["user_ids"] == [1, 2, 5, 10]
    assert open(files["chart"], "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert tables_fingerprint(db) == before


@pytest.mark.slow
def test_the_flow_publishes_its_artifacts(db, tmp_path, monkeypatch, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.compare_plans import compare_plans

    scenario = load_scenario(db, "ranks")
    other = _builder_at("60000", "builder-60k", tmp_path)
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(scenario.root_telegram_id))
    report = compare_plans(str(tmp_path / "builder-60k.toml"), month="2025-10", out_dir=str(tmp_path / "flow"))
    assert report["other_plan"] == other.version and report["period"] == "2025-10"
    assert report["differences"]["by_value"]["rank"]["user_ids"] == [2]  # October's end: the same purchases
    keys = ["mlm-compare-plans", "mlm-compare-plans-differences", "mlm-compare-plans-page"]
    with get_client(sync_client=True) as client:
        found = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))}
    assert set(found) == set(keys)
    assert "users would differ" in found["mlm-compare-plans"].data
    assert ".html)" in found["mlm-compare-plans-page"].data  # a link artifact (Prefect stores it as Markdown)

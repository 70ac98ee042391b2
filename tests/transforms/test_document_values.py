"""Values of a small recompute that the reference comparison does not cover: team sizes, the
totalVolume document's keys and provenance, pioneerNumber only for pioneers, what the owned-values
fingerprint hashes, JSON strings with characters to escape, and pioneers tied in time or
quarantined. Hand-derived on a five-user tree."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

import polars as pl
import pytest

from tests.transforms.reference import Purchase, User
from tests.transforms.test_reference import Case, inputs_of, scaled_plan
from transforms import json_text as js
from transforms.documents import Provenance, owned_values_fingerprint
from transforms.pioneers import held_number_problems, pioneers
from transforms.recompute import CANDIDATE_COLUMNS, USER_INPUT_COLUMNS, recompute

PLAN = scaled_plan()  # pioneer minimum 5000.00 as in production
AS_OF = datetime(2025, 10, 17)
PROVENANCE = Provenance(run_id=7, plan_version=PLAN.version, as_of=AS_OF.replace(tzinfo=timezone.utc), calculated_at=datetime(2025, 10, 17, 3, 4, 5, tzinfo=timezone.utc))
#     1
#   2   5
#   3
#   4
USERS = [User(1, 100, 100), User(2, 200, 100), User(3, 300, 200), User(4, 400, 300), User(5, 500, 100)]
# 3 and 5 each buy one pack at the pioneer minimum, 3 first
PURCHASES = [Purchase(11, 3, 500_000, datetime(2025, 10, 2)), Purchase(12, 5, 500_000, datetime(2025, 10, 3)), Purchase(13, 4, 2_500, datetime(2025, 10, 4))]


def _recompute(inputs=None, **options):
    case = Case(USERS, PURCHASES, PLAN, None, AS_OF, "2025-10")
    return recompute(inputs or inputs_of(case), PLAN, period="2025-10", root_telegram_id=None, provenance=PROVENANCE, **options)


def _by_user(frame: pl.DataFrame, column: str) -> dict:
    return dict(zip(frame["user_id"], frame[column]))


def test_team_size_counts_everyone_below_a_user():
    assert _by_user(_recompute().state, "team_size") == {1: 4, 2: 2, 3: 1, 4: 0, 5: 0}


def test_total_volume_holds_the_progress_then_the_runs_provenance():
    documents = _recompute().documents
    total = json.loads(_by_user(documents, "total_volume")[3])
    assert list(total) == [
        "qualifyingVolume", "fullVolume", "requiredForNextRank", "gap", "nextRank", "currentRank", "capLimit", "branches",
        "calculatedAt", "runId", "planVersion", "asOf",
    ]  # fmt: skip
    assert (total["calculatedAt"], total["runId"], total["planVersion"], total["asOf"]) == (
        "2025-10-17T03:04:05+00:00", 7, PLAN.version, "2025-10-17T00:00:00+00:00",
    )  # fmt: skip


def test_only_a_pioneer_carries_a_pioneer_number():
    status = {u: json.loads(text) for u, text in _by_user(_recompute().documents, "mlm_status").items()}
    assert (status[3]["pioneerNumber"], status[5]["pioneerNumber"]) == (1, 2)
    assert [u for u in status if "pioneerNumber" in status[u]] == [3, 5]


@pytest.mark.parametrize("column", ["rank", "is_active", "full_volume_cents", "personal_volume_total_cents", "mlm_volumes", "mlm_status", "total_volume_core"])
def test_the_owned_values_fingerprint_changes_with_each_value_the_write_compares(column):
    row = {"rank": "start", "is_active": True, "full_volume_cents": 100, "personal_volume_total_cents": 50, "mlm_volumes": "{}", "mlm_status": "{}", "total_volume_core": "{}"}
    changed = {"rank": "builder", "is_active": False, "full_volume_cents": 101, "personal_volume_total_cents": 51, "mlm_volumes": '{"a":1}', "mlm_status": '{"a":1}', "total_volume_core": '{"a":1}'}
    frame = pl.DataFrame([row, row | {column: changed[column]}])
    hashes = frame.select(owned_values_fingerprint())[:, 0]
    assert hashes[0] != hashes[1]


def test_a_json_string_escapes_backslashes_quotes_and_control_characters():
    # a first name is the platform's data: anything a text column holds must come out as JSON
    texts = ["plain", 'a "quoted" word', "back\\slash", "C:\\new\\table", "line\nbreak\ttab", "\\\"", "", "Zoë 🚀", "".join(map(chr, range(1, 32)))]
    encoded = pl.DataFrame({"t": texts}).select(js.string(pl.col("t")))[:, 0]
    assert [json.loads(e) for e in encoded] == texts


def test_an_object_whose_first_member_may_be_left_out_is_refused():
    with pytest.raises(ValueError, match="^a JSON object's first member must always be present$"):
        js.obj(js.member("a", pl.lit("1"), when=pl.lit(True)))
    with pytest.raises(ValueError, match="^a JSON object's first member must always be present$"):
        js.obj()


def _users(user_ids: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"user_id": user_ids}, schema={"user_id": pl.Int64}).with_columns(
        *(pl.lit(None, dtype).alias(name) for name, dtype in USER_INPUT_COLUMNS.items() if name != "user_id")
    )


def test_candidates_tied_in_time_are_numbered_by_purchase_id_and_marked_new():
    at = datetime(2025, 10, 5)
    candidates = pl.DataFrame([(8, 90, at), (6, 70, at), (7, 80, datetime(2025, 10, 4))], schema=CANDIDATE_COLUMNS, orient="row")
    granted = pioneers(_users([6, 7, 8]), candidates, slots=10)
    assert granted.sort("pioneer_number").select("user_id", "pioneer_number", "is_new_pioneer").rows() == [(7, 1, True), (6, 2, True), (8, 3, True)]


def test_the_last_slot_goes_to_the_lower_purchase_id_of_candidates_tied_in_time():
    at = datetime(2025, 10, 5)
    candidates = pl.DataFrame([(8, 90, at), (6, 70, at), (7, 80, at)], schema=CANDIDATE_COLUMNS, orient="row")
    granted = pioneers(_users([6, 7, 8]), candidates, slots=1)
    assert granted.select("user_id", "pioneer_purchase_id", "pioneer_number").rows() == [(6, 70, 1)]


def test_a_quarantined_candidate_takes_no_slot():
    case = Case(USERS, PURCHASES, PLAN, None, AS_OF, "2025-10")
    inputs = inputs_of(case)
    users = inputs.users.with_columns(mlm_volumes_type=pl.when(pl.col("user_id") == 3).then(pl.lit("array")).otherwise(None))
    result = _recompute(dataclasses.replace(inputs, users=users), quarantine=True)
    assert 3 not in result.state["user_id"].to_list()
    assert _by_user(result.state, "pioneer_number")[5] == 1  # 5 is the first pioneer written


def test_team_size_counts_the_whole_downline_beyond_the_plans_depth_limit():
    # A chain of 8 users under a plan counting 3 levels: volumes and active partners stop at the
    # limit, the team's size does not (totalTeamSize is everyone below).
    plan = PLAN.with_overrides({"max_depth": 3})
    chain = [User(1, 100, 100)] + [User(k, 100 * k, 100 * (k - 1)) for k in range(2, 9)]
    bought = [Purchase(20 + k, k, 10_000, datetime(2025, 10, 5)) for k in range(2, 9)]
    case = Case(chain, bought, plan, None, AS_OF, "2025-10")
    state = recompute(inputs_of(case), plan, period="2025-10", root_telegram_id=None, provenance=PROVENANCE).state
    assert _by_user(state, "team_size") == {k: 8 - k for k in range(1, 9)}
    assert _by_user(state, "full_volume_cents")[1] == 3 * 10_000  # users 2, 3 and 4 only


def test_documents_come_in_batches_of_the_size_asked_for():
    result = _recompute()
    assert [b.height for b in result.document_batches(2)] == [2, 2, 1]
    assert [b["user_id"].to_list() for b in result.document_batches(5)] == [result.documents["user_id"].to_list()]


def _pioneer_users(user_ids: list[int], stored: dict[int, int]) -> pl.DataFrame:
    """Users ``user_ids``; those in ``stored`` hold a stored grant with that pioneerNumber."""
    return _users(user_ids).with_columns(
        has_pioneer_bonus=pl.col("user_id").is_in(list(stored)),
        pioneer_granted_at=pl.when(pl.col("user_id").is_in(list(stored))).then(pl.lit("2025-09-01T10:00:00+00:00")),
        pioneer_purchase_id=pl.when(pl.col("user_id").is_in(list(stored))).then(pl.col("user_id") * 10),
        pioneer_number=pl.col("user_id").replace_strict(stored, default=None, return_dtype=pl.Int64),
    )


def test_a_stored_grant_is_not_new_and_a_grant_of_this_run_is():
    users = _pioneer_users([6, 7], {6: 1})
    candidates = pl.DataFrame([(7, 70, datetime(2025, 10, 5))], schema=CANDIDATE_COLUMNS, orient="row")
    granted = pioneers(users, candidates, slots=10)
    assert granted.select("user_id", "pioneer_number", "is_new_pioneer").rows() == [(6, 1, False), (7, 2, True)]


def test_a_held_out_pioneer_keeps_the_last_number_and_that_is_no_problem():
    # User 6 is quarantined and holds number 2 of the two pioneers: the others are numbered
    # around it (7 takes 1). Only a number beyond the count of pioneers could not be kept.
    users = _pioneer_users([6, 7], {6: 2})
    candidates = pl.DataFrame([(7, 70, datetime(2025, 10, 5))], schema=CANDIDATE_COLUMNS, orient="row")
    held_out = pl.Series("user_id", [6], pl.Int64)
    granted = pioneers(users, candidates, slots=10, held_out=held_out)
    assert granted.select("user_id", "pioneer_number").rows() == [(7, 1), (6, 2)]
    assert held_number_problems(granted, users, held_out) == []
    beyond = _pioneer_users([6, 7], {6: 3})
    [beyond_count] = held_number_problems(pioneers(beyond, candidates, slots=10, held_out=held_out), beyond, held_out)
    assert (beyond_count.kind, beyond_count.ids, beyond_count.detail) == ("held_pioneer_number", (6,), "2 pioneers; stored numbers userID 6: 3")

"""Prove that what is stored equals what was computed, and that nothing else changed.

Three moments:
* ``pending_changes``: before the write, which owned keys and columns differ (the run's report,
  the dry run's answer, the audit's drift);
* ``failures_in_transaction``: after the write, before commit: the written rows read back equal
  the staged ones, no foreign key or untouched column moved, ranks never fell, every written
  user has its documents, stored personal totals equal the purchases, pioneers are consistent;
* ``failures_after_commit``: from a new connection, every written user read back again. This is
  the check the platform's lost in-place writes would have failed.

Each failure is ``{"user_id", "check_name", "detail"}``.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from db.connection import Database
from db.unit_of_work import write_connection
from db.extract import may_be_pioneer, naive_utc
from db.load import STATUS_DEFAULTS, VOLUME_DEFAULTS, merged_document, ROW_VERSION, before_table, json_column_types, quoted, written_table, STATUS_KEYS, VOLUME_KEYS, untouched_digest, OWNED_STATUS_KEYS, OWNED_VOLUME_KEYS
from transforms.plan import Plan

TOTAL_VOLUME_KEYS = ("qualifyingVolume", "fullVolume", "requiredForNextRank", "gap", "nextRank", "currentRank", "capLimit", "branches")

# The merged documents of user ``u``, each parsed once per row (``OFFSET 0`` keeps PostgreSQL
# from inlining the casts into every expression that uses them).
PARSED = """LATERAL (SELECT u."mlmStatus"::jsonb AS status, u."mlmVolumes"::jsonb AS volumes OFFSET 0) AS d"""


def _owned_differences(total_volume_type: str) -> dict[str, str]:
    """For each owned value: the condition under which the stored one (u, d) differs from the
    staged one (s), for written users. ``totalVolume`` is written whole, so it is compared whole:
    in a ``json`` column as the very text written (json keeps its input: the staged document's
    text), so the stored one is not parsed."""
    total = 'u."totalVolume"::text IS DISTINCT FROM s.total_volume::text' if total_volume_type == "json" else 'u."totalVolume" IS DISTINCT FROM s.total_volume'
    return {
        "rank": 'u."rank" IS DISTINCT FROM s.rank',
        "isActive": 'u."isActive" IS DISTINCT FROM s.is_active',
        "fullVolume": 'u."fullVolume" IS DISTINCT FROM s.full_volume',
        "teamVolumeTotal": 'u."teamVolumeTotal" IS DISTINCT FROM s.full_volume',
        "personalVolumeTotal": 'u."personalVolumeTotal" IS DISTINCT FROM s.personal_volume_total',
        "mlmStatus": "NOT COALESCE(d.status @> s.mlm_status, false)",
        "mlmVolumes": "NOT COALESCE(d.volumes @> s.mlm_volumes, false)",
        "totalVolume": total,
    }


def _named(conditions: dict[str, str]) -> str:
    """SQL text naming every condition that holds, comma-separated ('' when none does)."""
    return "concat_ws(', ', " + ", ".join(f"CASE WHEN {c} THEN '{name}' END" for name, c in conditions.items()) + ")"


def _rows(connection: psycopg.Connection, statement, params=None) -> list[tuple]:
    return connection.execute(statement, params).fetchall()


def _committed_mismatches(connection: psycopg.Connection, table: str) -> list[dict]:
    """Written users whose stored owned values now differ from the staged ones, naming the values.

    A row whose version (xmin) is still the one this run's UPDATE gave it is, byte for byte, the
    row the in-transaction validation read back and proved; only rows whose version moved (a
    commit that did not keep the write, or anyone writing since) are parsed and compared again.
    Users not written were compared equal inside the transaction: that is why they were not.
    """
    owned = _owned_differences(json_column_types(connection)["totalVolume"])
    written = quoted(written_table(table))
    statement = f"""WITH moved AS MATERIALIZED (
                SELECT w.user_id FROM {written} AS w LEFT JOIN users AS u ON u."userID" = w.user_id
                WHERE u."userID" IS NULL OR {ROW_VERSION} <> w.row_version)
            SELECT s.user_id, CASE WHEN u."userID" IS NULL THEN 'user row is gone' ELSE {_named(owned)} END
            FROM moved AS m JOIN {quoted(table)} AS s ON s.user_id = m.user_id
            LEFT JOIN users AS u ON u."userID" = s.user_id
            LEFT JOIN {PARSED} ON true
            WHERE u."userID" IS NULL OR {" OR ".join(owned.values())}"""
    return [
        {"user_id": user_id, "check_name": "stored_equals_computed", "detail": f"stored differs from computed: {what}"}
        for user_id, what in _rows(connection, statement)
    ]


# The stored rank is below the prior one (a user without one counts as the plan's entry rank).
_FELL = 'array_position(%(ranks)s::text[], u."rank") < array_position(%(ranks)s::text[], COALESCE(b.rank, %(entry)s))'


def _typeof(column: str, column_type: str) -> str:
    """The JSON type of stored column ``u.column``, read without parsing the whole document."""
    return f"""{"json_typeof" if column_type == "json" else "jsonb_typeof"}(u."{column}")"""


def _written_row_suspects(connection: psycopg.Connection, table: str, plan: Plan, types: dict[str, str]) -> list[int]:
    """The written users any check of ``_written_row_failures`` could fail: one condition per
    row that every stored document is parsed once for (the mlmStatus and mlmVolumes merges are
    proved whole: stored equals prior merged with staged, which is the UPDATE's own contract, so
    owned and foreign keys are proved at once). Written as one filter over a plain join, so that
    PostgreSQL runs it in parallel workers over every written user; naming what failed is left
    to the few rows it returns."""
    owned = _owned_differences(types["totalVolume"])
    scalars = [owned[c] for c in ("rank", "isActive", "fullVolume", "teamVolumeTotal", "personalVolumeTotal", "totalVolume")]
    merged = [
        f"""u."mlmStatus"::jsonb IS DISTINCT FROM {merged_document(STATUS_DEFAULTS, 'b.mlm_status', 's.mlm_status')}""",
        f"""u."mlmVolumes"::jsonb IS DISTINCT FROM {merged_document(VOLUME_DEFAULTS, 'b.mlm_volumes', 's.mlm_volumes')}""",
        # a staged key the recompute does not own would be a foreign key changed by the merge
        f"(s.mlm_status - {STATUS_KEYS}) <> '{{}}'",
        f"(s.mlm_volumes - {VOLUME_KEYS}) <> '{{}}'",
    ]
    others = [
        f"{untouched_digest(connection)} IS DISTINCT FROM b.untouched",
        _FELL,
        *(f"{_typeof(c, types[c])} IS DISTINCT FROM 'object'" for c in ("mlmStatus", "mlmVolumes", "totalVolume")),
    ]
    rows = _rows(
        connection,
        f"""SELECT b.user_id FROM {quoted(before_table(table))} AS b JOIN {quoted(table)} AS s ON s.user_id = b.user_id
            JOIN users AS u ON u."userID" = b.user_id
            WHERE {" OR ".join(scalars + merged + others)}""",
        {"ranks": plan.rank_names, "entry": plan.rank_names[0]},
    )
    return [user_id for (user_id,) in rows]



def _written_row_failures(connection: psycopg.Connection, table: str, plan: Plan) -> list[dict]:
    """Every written user read back: owned values equal the staged ones, nothing it does not own
    moved, the rank did not fall, the documents are objects. Every row is screened by
    ``_written_row_suspects``; only the suspects are compared value by value, to name what differs."""
    types = json_column_types(connection)
    suspects = _written_row_suspects(connection, table, plan, types)
    if not suspects:
        return []
    owned = _owned_differences(types["totalVolume"])
    # the prior documents with the platform's defaults under them: what the write kept
    prior_status = merged_document(STATUS_DEFAULTS, "b.mlm_status", "'{}'::jsonb")
    prior_volumes = merged_document(VOLUME_DEFAULTS, "b.mlm_volumes", "'{}'::jsonb")
    foreign = {
        "mlmStatus": f"(COALESCE(d.status, '{{}}') - {STATUS_KEYS}) IS DISTINCT FROM ({prior_status} - {STATUS_KEYS})",
        "mlmVolumes": f"(COALESCE(d.volumes, '{{}}') - {VOLUME_KEYS}) IS DISTINCT FROM ({prior_volumes} - {VOLUME_KEYS})",
        "staged mlmStatus": f"(s.mlm_status - {STATUS_KEYS}) <> '{{}}'",
        "staged mlmVolumes": f"(s.mlm_volumes - {VOLUME_KEYS}) <> '{{}}'",
        "columns the recompute does not own": f"{untouched_digest(connection)} IS DISTINCT FROM b.untouched",
    }
    not_objects = " OR ".join(f"{_typeof(c, types[c])} IS DISTINCT FROM 'object'" for c in ("mlmStatus", "mlmVolumes", "totalVolume"))
    found = _rows(
        connection,
        f"""SELECT b.user_id, {_named(owned)}, {_named(foreign)}, {_FELL}, b.rank, u."rank", {not_objects}
            FROM {quoted(before_table(table))} AS b JOIN {quoted(table)} AS s ON s.user_id = b.user_id
            JOIN users AS u ON u."userID" = b.user_id, {PARSED}
            WHERE b.user_id = ANY(%(suspects)s)
            ORDER BY b.user_id""",
        {"ranks": plan.rank_names, "entry": plan.rank_names[0], "suspects": suspects},
    )
    failures = []
    for user_id, owned, foreign_keys, rank_fell, old_rank, new_rank, bad_documents in found:
        if owned:
            failures.append({"user_id": user_id, "check_name": "stored_equals_computed", "detail": f"stored differs from computed: {owned}"})
        if foreign_keys:
            failures.append({"user_id": user_id, "check_name": "foreign_keys_kept", "detail": f"changed what it does not own: {foreign_keys}"})
        if rank_fell:
            failures.append({"user_id": user_id, "check_name": "rank_never_down", "detail": f"rank fell from {old_rank} to {new_rank}"})
        if bad_documents:
            failures.append({"user_id": user_id, "check_name": "has_documents", "detail": "a JSON column is not an object after the write"})
        if not (owned or foreign_keys or rank_fell or bad_documents):
            # e.g. an owned key the recompute did not stage, whose prior value the merge keeps
            failures.append(
                {"user_id": user_id, "check_name": "stored_equals_computed", "detail": "stored documents differ from the prior ones merged with the computed ones"}
            )
    return failures


# The written users' purchases summed in integer cents (numeric sums are slow), in one pass over
# the purchases hash-joined with the written users. The platform has no index on
# purchases."userID": a per-user look-up would be a sequential scan of every purchase per user.
_BOUGHT_BY_WRITTEN = """SELECT p."userID" AS user_id, sum((p."packPrice" * 100)::bigint) AS cents
           FROM purchases AS p JOIN {before} AS w ON w.user_id = p."userID"
           WHERE p."createdAt" < %(as_of)s::timestamp AND p."packPrice" >= 0 AND p."purchaseID" <= %(max_id)s
           GROUP BY 1"""


def _volume_not_conserved(
    connection: psycopg.Connection, table: str, as_of: datetime, max_purchase_id: int | None, purchase_volume_cents: int | None = None
) -> list[dict]:
    """Stored personal totals of written users that differ from their purchases (as of the
    extract's watermark).

    ``purchase_volume_cents``: the valid purchases' total the extract summed in its snapshot.
    Every user's stored total was proved equal to what the run computed (written users by this
    transaction, the others when an earlier run compared them and nobody wrote them since), so
    the stored totals of all users must add up to it: one pass over ``users``, no purchase read
    again. Only when they do not (a quarantined buyer's purchases are in it, a concurrent writer,
    a fault) is each written user's total compared with its purchases, set-based, to name them.
    """
    params = {"as_of": naive_utc(as_of), "max_id": max_purchase_id or 0}
    if purchase_volume_cents is not None:
        (stored,) = connection.execute('SELECT COALESCE(sum(("personalVolumeTotal" * 100)::bigint), 0) FROM users').fetchone()
        if stored == purchase_volume_cents:
            return []
    before = quoted(before_table(table))
    statement = f"""WITH bought AS MATERIALIZED ({_BOUGHT_BY_WRITTEN.format(before=before)})
           SELECT s.user_id, u."personalVolumeTotal"::text, (COALESCE(b.cents, 0) / 100.0)::numeric(15, 2)::text
           FROM {quoted(table)} AS s JOIN {before} AS w ON w.user_id = s.user_id
           JOIN users AS u ON u."userID" = s.user_id LEFT JOIN bought AS b ON b.user_id = s.user_id
           WHERE (u."personalVolumeTotal" * 100)::bigint IS DISTINCT FROM COALESCE(b.cents, 0)"""
    found = _rows(connection, statement, params)
    return [
        {"user_id": u, "check_name": "volume_conserved", "detail": f"personalVolumeTotal {stored} but purchases sum to {bought}"}
        for u, stored, bought in found
    ]


def _pioneer_failures(connection: psycopg.Connection, plan: Plan, root_user_id: int | None) -> list[dict]:
    # Only documents that mention the key are parsed (in json text; jsonb tests it directly),
    # the few that do twice: one plain filter, which PostgreSQL scans with parallel workers (a
    # subquery with OFFSET 0, to parse once, kept the scan of every user on one core). CASE, not
    # AND: the planner orders AND's terms by cost, and would parse every document first (an
    # escaped NUL in one would fail the run). ``->`` on a document that is not an object is NULL.
    mentions = may_be_pioneer('"mlmStatus"', is_json=json_column_types(connection).get("mlmStatus") == "json")
    pioneers = _rows(
        connection,
        f"""SELECT "userID", "mlmStatus"::jsonb ->> 'pioneerNumber' FROM users
            WHERE CASE WHEN {mentions} THEN "mlmStatus"::jsonb -> 'hasPioneerBonus' = 'true'::jsonb ELSE false END
            ORDER BY 2, 1""",
    )
    failures = []
    numbers = [n for _, n in pioneers]
    if len(pioneers) > plan.pioneer_slots:
        failures += [{"user_id": u, "check_name": "pioneer_slots", "detail": f"{len(pioneers)} pioneers, {plan.pioneer_slots} slots"} for u, _ in pioneers]
    if sorted(numbers, key=lambda n: int(n) if n and n.isdigit() else -1) != [str(i) for i in range(1, len(pioneers) + 1)]:
        failures += [{"user_id": u, "check_name": "pioneer_numbering", "detail": f"pioneerNumber {n}; numbers must run 1..{len(pioneers)}"} for u, n in pioneers]
    if root_user_id is not None:
        counter = _rows(connection, """SELECT "mlmStatus"::jsonb ->> 'pioneerPurchasesCount' FROM users WHERE "userID" = %s""", [root_user_id])
        if not counter or counter[0][0] != str(len(pioneers)):
            got = counter[0][0] if counter else None
            failures.append({"user_id": root_user_id, "check_name": "pioneer_counter", "detail": f"root counts {got} pioneers, {len(pioneers)} hold the status"})
    return failures


def failures_in_transaction(
    connection: psycopg.Connection,
    table: str,
    plan: Plan,
    *,
    as_of: datetime,
    max_purchase_id: int | None,
    root_user_id: int | None,
    purchase_volume_cents: int | None = None,
) -> list[dict]:
    """Every check of the written state, inside the writing transaction, before commit."""
    return (
        _written_row_failures(connection, table, plan)
        + _volume_not_conserved(connection, table, as_of, max_purchase_id, purchase_volume_cents)
        + _pioneer_failures(connection, plan, root_user_id)
    )


def failures_after_commit(db: Database, table: str) -> list[dict]:
    """From a new connection: every written user's stored owned values equal the computed ones."""
    with write_connection(db) as connection:
        return _committed_mismatches(connection, table)


def pending_changes(connection: psycopg.Connection, table: str) -> dict:
    """Which owned values the write will change (from ``before_table``, before the UPDATE):
    users, per column and per key, and how far full and personal volumes move."""
    counts = {
        "rank": "b.rank IS DISTINCT FROM s.rank",
        "isActive": "b.is_active IS DISTINCT FROM s.is_active",
        "fullVolume": "b.full_volume IS DISTINCT FROM s.full_volume",
        "personalVolumeTotal": "b.personal_volume_total IS DISTINCT FROM s.personal_volume_total",
        **{f"mlmStatus.{k}": f"s.mlm_status ? '{k}' AND (b.mlm_status -> '{k}') IS DISTINCT FROM (s.mlm_status -> '{k}')" for k in OWNED_STATUS_KEYS},
        **{f"mlmVolumes.{k}": f"(b.mlm_volumes -> '{k}') IS DISTINCT FROM (s.mlm_volumes -> '{k}')" for k in OWNED_VOLUME_KEYS},
        **{f"totalVolume.{k}": f"(b.total_volume -> '{k}') IS DISTINCT FROM (s.total_volume -> '{k}')" for k in TOTAL_VOLUME_KEYS},
        "mlmStatus (was NULL)": "b.mlm_status IS NULL",
        "mlmVolumes (was NULL)": "b.mlm_volumes IS NULL",
        "totalVolume (was NULL)": "b.total_volume IS NULL",
    }
    columns = ", ".join(f"count(*) FILTER (WHERE {condition})" for condition in counts.values())
    statement = f"""SELECT count(*), {columns},
                   COALESCE(sum(abs(s.full_volume - COALESCE(b.full_volume, 0))), 0)::text,
                   COALESCE(max(abs(s.full_volume - COALESCE(b.full_volume, 0))), 0)::text,
                   COALESCE(sum(abs(s.personal_volume_total - COALESCE(b.personal_volume_total, 0))), 0)::text
            FROM {quoted(before_table(table))} AS b JOIN {quoted(table)} AS s ON s.user_id = b.user_id"""
    row = connection.execute(statement).fetchone()
    by_key = {name: value for name, value in zip(counts, row[1:]) if value}
    rank_rises = dict(
        _rows(
            connection,
            f"SELECT s.rank, count(*) FROM {quoted(before_table(table))} AS b JOIN {quoted(table)} AS s ON s.user_id = b.user_id WHERE s.rank_rose GROUP BY 1 ORDER BY 1",
        )
    )
    return {
        "users": row[0],
        "by_key": by_key,
        "rank_rises_to": rank_rises,
        "full_volume_moved_total": row[-3],
        "full_volume_moved_max": row[-2],
        "personal_volume_moved_total": row[-1],
    }



"""The demo platform has the documented shape, read back from PostgreSQL after the COPY load.

One ~10k-user demo is generated and loaded once for the module (the shape checks only read);
the checks that load again (refusal, the platform's own tables, a role that is no superuser)
get their own fresh databases.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal

from db.connection import Database, scratch_database
from db.demo import (
    PACK_PRICES_USD,
    PROJECT_LANGUAGES,
    PROJECT_NAMES,
    RANK_RATE_BP,
    DemoData,
    demo_frames,
    generate_and_load,
    load_demo,
)
from db.demo_documents import DEFAULT_MLM_STATUS
from db.demo_load import DEMO_TABLES, DemoLoader
from db.document_shapes import ALWAYS, SHAPES, Key
from tests.db.platform_catalog import catalog_facts

USERS = 10_000
MONTHS = 3
SEED = 20251031
END_MONTH = "2025-10"
WINDOW_MONTHS = ["2025-08", "2025-09", "2025-10"]
DUMP = Path(__file__).resolve().parents[3] / "shared" / "platform" / "schema.sql"
JSON_COLUMNS = ("mlmStatus", "mlmVolumes", "totalVolume", "personalData", "emailVerification", "settings")


@pytest.fixture(scope="module")
def demo() -> DemoData:
    """The module's demo frames: ~10k users, 3 months ending 2025-10."""
    return demo_frames(USERS, MONTHS, SEED, end_month=END_MONTH)


@pytest.fixture(scope="module")
def loaded(server_uri, template_name, demo):
    """A fresh migrated database (like the ``db`` fixture) holding the module's demo, shared by read-only tests."""
    with scratch_database(server_uri, prefix="mlm_test_demo", template=template_name) as database:
        load_demo(database, demo)
        with database.connect_raw() as conn:
            yield conn


def scalar(conn, query: str, *params):
    """The single value a query returns."""
    return conn.execute(query, params).fetchone()[0]


def demo_catalog(conn) -> dict:
    """The demo tables' columns, constraints and indexes (as the platform-schema test compares them)."""
    return catalog_facts(conn, list(DEMO_TABLES))


# The depth of every user below the root (root at 0), walking the tree by telegramID.
DEPTHS = """
    WITH RECURSIVE tree AS (
        SELECT "userID", "telegramID", 0 AS depth FROM users WHERE "upline" = "telegramID"
        UNION ALL
        SELECT child."userID", child."telegramID", tree.depth + 1
        FROM users child JOIN tree ON child."upline" = tree."telegramID"
        WHERE child."upline" <> child."telegramID" AND tree.depth < 10000
    )
"""


# --- every row arrives ---------------------------------------------------------------------------


def test_the_loaded_tables_hold_every_generated_row(loaded, demo):
    for table, frame in demo.tables():
        assert scalar(loaded, f"SELECT count(*) FROM {table}") == frame.height, table
    assert demo.users.height == USERS
    frame_total = demo.purchases.select(pl.col("packPrice").cast(pl.Decimal(14, 2)).sum()).item()
    assert scalar(loaded, 'SELECT sum("packPrice") FROM purchases') == frame_total
    bonus_total = demo.bonuses.select(pl.col("bonusAmount").cast(pl.Decimal(14, 2)).sum()).item()
    assert scalar(loaded, 'SELECT sum("bonusAmount") FROM bonuses') == bonus_total
    # Roughly purchases_per_user (10) purchases per user over the period.
    assert 8 <= demo.purchases.height / USERS <= 12


def test_id_sequences_continue_after_the_loaded_ids(loaded):
    for table, column in (("projects", "id"), ("options", "optionID"), ("users", "userID"), ("purchases", "purchaseID"), ("bonuses", "bonusID")):
        sequence = scalar(loaded, "SELECT pg_get_serial_sequence(%s, %s)", table, column)
        assert sequence is not None
        last_value = scalar(loaded, f"SELECT last_value FROM {sequence}")
        assert last_value == scalar(loaded, f'SELECT max("{column}") FROM {table}')


def test_the_tables_keep_their_indexes_and_constraints_and_get_statistics(loaded, template_name, server_uri):
    with scratch_database(server_uri, prefix="mlm_test_demo_empty", template=template_name) as empty:
        with empty.connect_raw() as conn:
            before = demo_catalog(conn)
    assert demo_catalog(loaded) == before
    assert scalar(loaded, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated") == 0
    analyzed = {row[0] for row in loaded.execute("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")}
    assert {"users", "purchases", "bonuses"} <= analyzed


@pytest.mark.parametrize(
    "table, column, parent, key",
    [
        ("purchases", "userID", "users", "userID"),
        ("purchases", "optionID", "options", "optionID"),
        ("bonuses", "userID", "users", "userID"),
        ("bonuses", "downlineID", "users", "userID"),
        ("bonuses", "purchaseID", "purchases", "purchaseID"),
    ],
)
def test_every_foreign_key_holds_though_a_superusers_load_skips_its_checks(loaded, table, column, parent, key):
    dangling = f"""SELECT count(*) FROM {table} t WHERE t."{column}" IS NULL
                   OR NOT EXISTS (SELECT 1 FROM {parent} p WHERE p."{key}" = t."{column}")"""
    assert scalar(loaded, dangling) == 0


# --- the tree ------------------------------------------------------------------------------------


def test_exactly_one_root_user_1_whose_upline_is_itself(loaded):
    roots = loaded.execute('SELECT "userID", "telegramID" FROM users WHERE "upline" = "telegramID"').fetchall()
    assert roots == [(1, 1_000_000_000)]


def test_every_upline_is_an_existing_telegram_id_never_a_user_id(loaded):
    orphans = scalar(
        loaded,
        'SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM users s WHERE s."telegramID" = u."upline")',
    )
    assert orphans == 0
    assert scalar(loaded, 'SELECT count(*) FROM users WHERE "upline" IS NULL') == 0
    assert scalar(loaded, 'SELECT count(DISTINCT "telegramID") FROM users') == USERS
    assert scalar(loaded, 'SELECT count(*) FROM users WHERE "telegramID" = "userID"') == 0


def test_the_root_reaches_every_user_once_so_there_are_no_cycles(loaded):
    reached, distinct, max_depth, beyond_50 = loaded.execute(
        DEPTHS + 'SELECT count(*), count(DISTINCT "userID"), max(depth), count(*) FILTER (WHERE depth > 50) FROM tree'
    ).fetchone()
    assert reached == distinct == USERS
    assert max_depth >= 20
    assert beyond_50 > 0


def test_the_tree_itself_is_deep_not_only_the_long_chains(loaded):
    # The explicit chains hold ~2% of the users, so the 90th percentile depth is the tree's own.
    p90 = scalar(loaded, DEPTHS + "SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY depth) FROM tree")
    assert p90 >= 15


def test_referrals_are_skewed_a_few_hubs_most_users_none(loaded):
    top, median, hubs = loaded.execute(
        """
        WITH referrals AS (
            SELECT s."userID", count(c."userID") AS n
            FROM users s
            LEFT JOIN users c ON c."upline" = s."telegramID" AND c."userID" <> s."userID"
            GROUP BY s."userID"
        )
        SELECT max(n), percentile_disc(0.5) WITHIN GROUP (ORDER BY n), count(*) FILTER (WHERE n >= 100)
        FROM referrals
        """
    ).fetchone()
    assert top >= 100
    assert median == 0
    assert hubs >= 2


# --- the catalog: projects and options -----------------------------------------------------------


def test_a_few_projects_each_described_in_every_language(loaded):
    rows = loaded.execute('SELECT "projectID", lang, "projectName", "projectTitle", status FROM projects ORDER BY id').fetchall()
    assert len(rows) == len(PROJECT_NAMES) * len(PROJECT_LANGUAGES)
    assert {(project, lang) for project, lang, *_ in rows} == {
        (project, lang) for project in range(1, len(PROJECT_NAMES) + 1) for lang in PROJECT_LANGUAGES
    }
    assert {name for _, _, name, _, _ in rows} == set(PROJECT_NAMES)
    assert all(title and status == "active" for *_, title, status in rows)


def test_one_option_per_project_and_pack_price_a_whole_number_of_shares(loaded):
    options = loaded.execute(
        'SELECT "projectID", "projectName", "costPerShare", "packQty", "packPrice", "isActive" FROM options'
    ).fetchall()
    names = dict(loaded.execute('SELECT DISTINCT "projectID", "projectName" FROM projects').fetchall())
    assert sorted((project, price) for project, _, _, _, price, _ in options) == sorted(
        (project, Decimal(usd)) for project in names for usd in PACK_PRICES_USD
    )
    for project, name, cost, quantity, price, active in options:
        assert name == names[project]
        assert cost * quantity == price
        assert active


# --- purchases -----------------------------------------------------------------------------------


def test_every_purchase_is_a_valid_option_at_its_price(loaded):
    mismatched = scalar(
        loaded,
        """
        SELECT count(*) FROM purchases p LEFT JOIN options o USING ("optionID")
        WHERE o."optionID" IS NULL
           OR p."packPrice" <> o."packPrice" OR p."packQty" <> o."packQty"
           OR p."projectID" <> o."projectID" OR p."projectName" IS DISTINCT FROM o."projectName"
        """,
    )
    assert mismatched == 0
    # Every project sells, every option is bought.
    assert scalar(loaded, 'SELECT count(DISTINCT "optionID") FROM purchases') == scalar(loaded, "SELECT count(*) FROM options")


def test_purchases_are_owned_by_their_buyer_and_never_edited(loaded):
    wrong_owner = scalar(
        loaded,
        """SELECT count(*) FROM purchases p JOIN users u USING ("userID")
           WHERE p."ownerTelegramID" IS DISTINCT FROM u."telegramID" """,
    )
    assert wrong_owner == 0
    assert scalar(loaded, 'SELECT count(*) FROM purchases WHERE "updatedAt" IS DISTINCT FROM "createdAt"') == 0


def test_purchases_cover_exactly_the_window_months(loaded):
    months = [row[0] for row in loaded.execute(
        """SELECT DISTINCT to_char("createdAt", 'YYYY-MM') FROM purchases ORDER BY 1"""
    )]
    assert months == WINDOW_MONTHS
    first, last = loaded.execute('SELECT min("createdAt"), max("createdAt") FROM purchases').fetchone()
    assert first >= datetime(2025, 8, 1) and last < datetime(2025, 11, 1)


def test_purchases_follow_their_user_and_ids_follow_time(loaded):
    early = scalar(
        loaded,
        'SELECT count(*) FROM purchases p JOIN users u USING ("userID") WHERE p."createdAt" < u."createdAt"',
    )
    assert early == 0
    orphans = 'SELECT count(*) FROM purchases p LEFT JOIN users u USING ("userID") WHERE u."userID" IS NULL'
    assert scalar(loaded, orphans) == 0
    out_of_order = scalar(
        loaded,
        """
        SELECT count(*) FROM (
            SELECT "createdAt" < lag("createdAt") OVER (ORDER BY "purchaseID") AS backwards FROM purchases
        ) t WHERE backwards
        """,
    )
    assert out_of_order == 0


def test_prices_are_packs_skewed_small_with_many_pioneer_candidates(loaded):
    prices = {row[0] for row in loaded.execute('SELECT DISTINCT "packPrice" FROM purchases')}
    assert prices <= {Decimal(usd) for usd in PACK_PRICES_USD}
    assert scalar(loaded, 'SELECT count(DISTINCT "userID") FROM purchases WHERE "packPrice" >= 5000') > 50
    small, large = loaded.execute(
        """
        SELECT count(*) FILTER (WHERE "packPrice" <= 200), count(*) FILTER (WHERE "packPrice" >= 5000)
        FROM purchases
        """
    ).fetchone()
    assert small > 10 * large


def test_some_users_buy_every_month_and_many_skip_months(loaded):
    every_month, idle = loaded.execute(
        """
        WITH months AS (
            SELECT u."userID", count(DISTINCT date_trunc('month', p."createdAt")) AS n
            FROM users u LEFT JOIN purchases p USING ("userID")
            GROUP BY u."userID"
        )
        SELECT count(*) FILTER (WHERE n = 3), count(*) FILTER (WHERE n < 3) FROM months
        """
    ).fetchone()
    assert every_month > 0.05 * USERS
    assert idle > 0.5 * USERS


# --- bonuses -------------------------------------------------------------------------------------


def test_bonuses_are_the_sponsors_commission_on_a_share_of_the_purchases(loaded):
    # Each bonus: paid to the buyer's sponsor, about that purchase, at its time, its option.
    wrong = scalar(
        loaded,
        """
        SELECT count(*) FROM bonuses b
        JOIN purchases p USING ("purchaseID")
        JOIN users buyer ON buyer."userID" = p."userID"
        JOIN users sponsor ON sponsor."telegramID" = buyer."upline"
        WHERE b."userID" <> sponsor."userID" OR b."downlineID" <> buyer."userID"
           OR b."createdAt" IS DISTINCT FROM p."createdAt"
           OR b."optionID" <> p."optionID" OR b."projectID" <> p."projectID"
           OR b."packPrice" <> p."packPrice" OR b."packQty" <> p."packQty"
           OR b."ownerTelegramID" IS DISTINCT FROM sponsor."telegramID"
           OR b."uplineLevel" <> 1
        """,
    )
    assert wrong == 0
    assert scalar(loaded, 'SELECT count(*) FROM bonuses b JOIN purchases p USING ("purchaseID") WHERE p."userID" = 1') == 0
    share = scalar(loaded, "SELECT (SELECT count(*) FROM bonuses)::numeric / (SELECT count(*) FROM purchases)")
    assert Decimal("0.05") < share < Decimal("0.2")
    assert scalar(loaded, 'SELECT count(DISTINCT "purchaseID") FROM bonuses') == scalar(loaded, "SELECT count(*) FROM bonuses")


def test_a_bonus_is_its_rank_rate_times_the_price_in_exact_cents(loaded):
    rates = {row[0] for row in loaded.execute('SELECT DISTINCT "bonusRate" FROM bonuses')}
    assert Decimal("0.04") in rates
    assert rates <= {Decimal(bp) / 10_000 for bp in RANK_RATE_BP}
    assert scalar(loaded, 'SELECT count(*) FROM bonuses WHERE "bonusAmount" <> round("bonusRate" * "packPrice", 2)') == 0
    # The rate is the sponsor's stored rank's: a founder with an assigned rank earns more.
    wrong_rate = scalar(
        loaded,
        """SELECT count(*) FROM bonuses b JOIN users u USING ("userID")
           WHERE b."bonusRate" <> CASE u."rank" WHEN 'start' THEN 0.04 WHEN 'builder' THEN 0.08 WHEN 'growth' THEN 0.12
                                                WHEN 'leadership' THEN 0.15 WHEN 'director' THEN 0.18 END""",
    )
    assert wrong_rate == 0


def test_commissions_earned_have_something_to_sum_in_every_month(loaded):
    # monthly_stats."commissionsEarned": a user's bonuses created in the month.
    per_month = dict(
        loaded.execute(
            """SELECT to_char("createdAt", 'YYYY-MM'), count(DISTINCT "userID")
               FROM bonuses WHERE "bonusAmount" > 0 GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    )
    assert list(per_month) == WINDOW_MONTHS
    assert all(earners > 100 for earners in per_month.values())


# --- users: profiles and scalar columns ----------------------------------------------------------


def test_profile_columns_are_filled_as_on_the_platform(loaded):
    always = ("firstname", "lang", "status", "lastActive", "balanceActive", "balancePassive", "createdAt")
    for column in always:
        assert scalar(loaded, f'SELECT count(*) FROM users WHERE "{column}" IS NULL') == 0, column
    # Most users filled in their profile; those who did not have no contacts.
    for column in ("email", "surname", "birthday", "address", "phoneNumber", "city", "country", "passport"):
        filled = scalar(loaded, f'SELECT count(*) FROM users WHERE "{column}" IS NOT NULL')
        assert 0.2 * USERS < filled < USERS, column
    assert scalar(loaded, 'SELECT count(DISTINCT email) = count(email) FROM users')
    assert scalar(loaded, "SELECT count(*) FROM users WHERE email !~ '^[a-z]+\\.[a-z]+[0-9]+@[a-z.]+$'") == 0
    assert {row[0] for row in loaded.execute("SELECT DISTINCT lang FROM users")} <= {"en", "ru", "de", "tr"}
    assert scalar(loaded, 'SELECT count(*) FROM users WHERE "lastActive" < "createdAt"') == 0
    assert scalar(loaded, 'SELECT count(*) FROM users WHERE "balanceActive" > 0') > 0.1 * USERS
    assert scalar(loaded, 'SELECT count(*) FROM users WHERE "balanceActive" < 0 OR "balancePassive" < 0') == 0
    assert 0 < scalar(loaded, 'SELECT count(*) FROM users WHERE "stateFSM" IS NOT NULL') < 0.1 * USERS


def test_volume_columns_are_never_null_zero_unless_stale(loaded):
    for column in ("fullVolume", "teamVolumeTotal", "personalVolumeTotal"):
        assert scalar(loaded, f'SELECT count(*) FROM users WHERE "{column}" IS NULL') == 0
        zero = scalar(loaded, f'SELECT count(*) FROM users WHERE "{column}" = 0')
        assert 0.9 * USERS < zero < USERS, column
    assert scalar(loaded, 'SELECT count(*) FROM users WHERE "teamVolumeTotal" <> "fullVolume"') == 0
    assert scalar(loaded, 'SELECT count(*) FROM users WHERE "isActive" IS NULL OR "rank" IS NULL') == 0


def test_money_is_rendered_from_cents_as_decimal_text(demo):
    money = r"^\d+\.\d\d$"
    assert demo.purchases.schema["packPrice"] == pl.String
    assert demo.purchases["packPrice"].str.contains(money).all()
    for column in ("fullVolume", "personalVolumeTotal", "balanceActive", "balancePassive"):
        assert demo.users[column].str.contains(money).all(), column
    assert demo.bonuses["bonusAmount"].str.contains(money).all()
    assert demo.bonuses["bonusRate"].str.contains(r"^0\.\d{5}$").all()


# --- users: JSON documents -----------------------------------------------------------------------


def test_the_platforms_default_mlm_status_with_json_nulls_is_the_common_case(loaded):
    defaults = scalar(loaded, 'SELECT count(*) FROM users WHERE "mlmStatus"::jsonb = %s::jsonb', DEFAULT_MLM_STATUS)
    assert defaults > 0.8 * USERS
    assert json.loads(DEFAULT_MLM_STATUS) == {
        "rankQualifiedAt": None, "assignedRank": None, "isFounder": False,
        "lastActiveMonth": None, "pioneerPurchasesCount": 0, "hasPioneerBonus": False,
    }  # fmt: skip
    # JSON null, not a missing key and not the string "null".
    json_nulls = scalar(
        loaded,
        """SELECT count(*) FROM users WHERE jsonb_typeof("mlmStatus"::jsonb -> 'rankQualifiedAt') = 'null'
                                          AND jsonb_typeof("mlmStatus"::jsonb -> 'assignedRank') = 'null'""",
    )
    assert json_nulls >= defaults


def test_the_default_mlm_volumes_carry_autoship_settings(loaded):
    autoship = loaded.execute(
        """SELECT ("mlmVolumes"::jsonb #>> '{autoship,enabled}')::boolean, count(*)
           FROM users WHERE "mlmVolumes"::jsonb -> 'personalTotal' = '0.0'::jsonb
                        AND "mlmVolumes"::jsonb -> 'monthlyPV' = '0.0'::jsonb
           GROUP BY 1"""
    ).fetchall()
    counts = dict(autoship)
    assert counts[False] > 0.7 * USERS
    assert 0 < counts[True] < 0.2 * USERS
    assert scalar(loaded, """SELECT count(*) FROM users WHERE jsonb_typeof("mlmVolumes"::jsonb #> '{autoship,amount}') = 'number'""") > 0.8 * USERS


@pytest.mark.parametrize(
    "column, path, keys",
    [
        ("mlmStatus", "{}", ["rankQualifiedAt", "assignedRank", "isFounder", "lastActiveMonth", "pioneerPurchasesCount", "hasPioneerBonus"]),
        ("mlmStatus", "{}", ["isFounder", "founderGrantedAt", "founderGrantedBy"]),
        ("mlmVolumes", "{}", ["personalTotal", "monthlyPV", "autoship"]),
        ("mlmVolumes", "{}", ["monthlyPV", "personalTotal", "graceDayStreak", "lastGraceDayMonth"]),
        ("mlmVolumes", "{autoship}", ["enabled", "amount"]),
        ("totalVolume", "{}", ["fullVolume", "qualifyingVolume", "branches", "calculatedAt"]),
        ("personalData", "{}", ["eulaAccepted", "eulaVersion", "eulaAcceptedAt", "dataFilled", "kyc"]),
        ("personalData", "{kyc}", ["status", "verifiedAt", "documents", "level"]),
        ("emailVerification", "{}", ["confirmed", "token", "sentAt", "confirmedAt", "attempts"]),
        ("settings", "{}", ["strategy", "notifications", "display"]),
        ("settings", "{notifications}", ["bonus", "purchase"]),
        ("settings", "{display}", ["showBalance"]),
    ],
)
def test_documents_carry_their_documented_keys(loaded, column, path, keys):
    with_keys = scalar(loaded, f'SELECT count(*) FROM users WHERE "{column}"::jsonb #> %s ?& %s', path, keys)
    assert with_keys > 0


@pytest.mark.parametrize("column", JSON_COLUMNS)
def test_every_document_is_an_object_or_sql_null_and_some_are_null(loaded, column):
    kinds = dict(loaded.execute(f'SELECT coalesce(jsonb_typeof("{column}"::jsonb), \'sql null\'), count(*) FROM users GROUP BY 1').fetchall())
    assert set(kinds) == {"object", "sql null"}
    assert kinds["sql null"] > 0
    if column != "totalVolume":  # the models write no default totalVolume: only the stale ones
        assert kinds["object"] > 0.5 * USERS


# Keys beyond the documented shapes: the stale documents' keys the recompute must preserve.
PRESERVED_KEYS = {"mlmVolumes": {"graceDayStreak", "lastGraceDayMonth"}, "mlmStatus": {"founderGrantedAt", "founderGrantedBy"}}
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def kind_holds(value, key: Key) -> bool:
    """Whether a non-null ``value`` is of ``key``'s kind (db.document_shapes.VALUE_KINDS)."""
    return {
        "number": lambda: is_number(value),
        "integer": lambda: is_number(value) and float(value).is_integer(),
        "money": lambda: is_number(value) or (isinstance(value, str) and re.fullmatch(r"\d+\.\d\d", value) is not None),
        "boolean": lambda: isinstance(value, bool),
        "string": lambda: isinstance(value, str) and (not key.one_of or value in key.one_of),
        "iso_time": lambda: isinstance(value, str) and ISO_TIME.match(value) is not None,
        "month": lambda: isinstance(value, str) and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value) is not None,
        "rank": lambda: value in {"start", "builder", "growth", "leadership", "director"},
        "pioneer_number": lambda: isinstance(value, int) and 1 <= value <= 50,
        "array": lambda: isinstance(value, list),
        "object": lambda: isinstance(value, dict),
        "objects": lambda: isinstance(value, list) and all(isinstance(item, dict) for item in value),
    }[key.kind]()


def shape_deviations(document: dict, keys: Mapping[str, Key], path: str, extra: set[str] = frozenset()) -> list[str]:
    """How ``document`` departs from its documented ``keys``: one line per missing, unknown or ill-typed key."""
    found = [f"{path}.{name}: unknown key" for name in document if name not in keys and name not in extra]
    for name, key in keys.items():
        if name not in document:
            found += [f"{path}.{name}: missing"] if key.required == ALWAYS else []
        elif document[name] is None:
            found += [] if key.null else [f"{path}.{name}: null"]
        elif not kind_holds(document[name], key):
            found.append(f"{path}.{name}: {document[name]!r} is no {key.kind}")
        elif key.kind == "object":
            found += shape_deviations(document[name], key.keys, f"{path}.{name}")
        elif key.kind == "objects":
            found += [line for item in document[name] for line in shape_deviations(item, key.keys, f"{path}.{name}[]")]
    return found


@pytest.mark.parametrize("column", JSON_COLUMNS)
def test_every_document_has_its_documented_shape_and_only_the_preserved_keys_beyond(demo, column):
    documents = demo.users[column].drop_nulls().unique()
    deviations = {
        line for text in documents for line in shape_deviations(json.loads(text), SHAPES[column], column, PRESERVED_KEYS.get(column, set()))
    }
    assert sorted(deviations) == []


def test_migrated_users_hold_no_document_at_all(loaded):
    migrated = scalar(loaded, "SELECT count(*) FROM users WHERE notes = 'migrated from the legacy sheet'")
    assert 0.03 * USERS < migrated < 0.15 * USERS
    with_documents = scalar(
        loaded,
        "SELECT count(*) FROM users WHERE notes = 'migrated from the legacy sheet' AND num_nonnulls("
        + ", ".join(f'"{c}"' for c in JSON_COLUMNS)
        + ") > 0",
    )
    assert with_documents == 0
    assert scalar(loaded, """SELECT count(*) FROM users WHERE notes = 'migrated from the legacy sheet' AND email IS NULL""") == 0


def test_personal_data_and_email_verification_agree_with_the_profile(loaded):
    # dataFilled exactly for users with a filled profile; KYC started only for them.
    disagree = scalar(
        loaded,
        """SELECT count(*) FROM users WHERE "personalData" IS NOT NULL
           AND (("personalData"::jsonb ->> 'dataFilled')::boolean <> (city IS NOT NULL)
                OR ("personalData"::jsonb #>> '{kyc,status}' <> 'not_started') <> (passport IS NOT NULL))""",
    )
    assert disagree == 0
    statuses = {row[0] for row in loaded.execute("""SELECT DISTINCT "personalData"::jsonb #>> '{kyc,status}' FROM users""")}
    assert statuses == {None, "not_started", "pending", "verified", "rejected"}
    unverified_with_time = scalar(
        loaded,
        """SELECT count(*) FROM users WHERE ("personalData"::jsonb #>> '{kyc,status}') <> 'verified'
           AND jsonb_typeof("personalData"::jsonb #> '{kyc,verifiedAt}') <> 'null'""",
    )
    assert unverified_with_time == 0
    without_email = scalar(loaded, 'SELECT count(*) FROM users WHERE "emailVerification" IS NOT NULL AND email IS NULL')
    assert without_email == 0
    confirmed = dict(loaded.execute("""SELECT "emailVerification"::jsonb -> 'confirmed', count(*) FROM users
                                       WHERE "emailVerification" IS NOT NULL GROUP BY 1""").fetchall())
    assert confirmed[True] > confirmed[False] > 0


def test_foreign_keys_the_recompute_must_keep_are_present(loaded):
    autoship = scalar(
        loaded, """SELECT count(*) FROM users WHERE "mlmVolumes"::jsonb ? 'graceDayStreak' AND "mlmVolumes"::jsonb -> 'autoship' ? 'amount'"""
    )
    assert autoship > 0
    assigned = loaded.execute(
        """
        SELECT "rank", "mlmStatus"::jsonb ->> 'assignedRank', "mlmStatus"::jsonb ? 'assignedBy',
               "mlmStatus"::jsonb ? 'assignedAt'
        FROM users WHERE jsonb_typeof("mlmStatus"::jsonb -> 'assignedRank') = 'string'
        """
    ).fetchall()
    assert 1 <= len(assigned) <= 10
    assert all(rank == assigned_rank and by and at for rank, assigned_rank, by, at in assigned)
    founders = scalar(loaded, """SELECT count(*) FROM users WHERE "mlmStatus"::jsonb -> 'isFounder' = 'true'::jsonb""")
    assert founders > len(assigned)
    # Ranks other than start are exactly the assigned ones; the root is start.
    assert scalar(loaded, """SELECT count(*) FROM users WHERE "rank" <> 'start'""") == len(assigned)
    assert scalar(loaded, 'SELECT "rank" FROM users WHERE "userID" = 1') == "start"
    stale_scalars = scalar(loaded, """SELECT count(*) FROM users WHERE "personalVolumeTotal" > 0""")
    assert stale_scalars > 0


# --- reproducibility, refusal, other databases ---------------------------------------------------


def test_the_same_seed_gives_identical_frames_and_another_seed_does_not(demo):
    again = demo_frames(USERS, MONTHS, SEED, end_month=END_MONTH)
    for (_, frame), (_, frame_again) in zip(demo.tables(), again.tables()):
        assert_frame_equal(frame_again, frame, check_exact=True)
    other = demo_frames(USERS, MONTHS, SEED + 1, end_month=END_MONTH)
    assert not other.users.equals(demo.users)
    assert not other.purchases.equals(demo.purchases)
    assert not other.bonuses.equals(demo.bonuses)


def test_loading_into_a_table_with_rows_is_refused(db):
    with db.connect_raw() as conn:
        empty = demo_catalog(conn)
    generate_and_load(db, users=200, months=2, seed=1)
    with db.connect_raw() as conn:
        before = [scalar(conn, f"SELECT count(*) FROM {table}") for table in DEMO_TABLES]
    with pytest.raises(ValueError, match="already has rows"):
        generate_and_load(db, users=200, months=2, seed=2)
    with db.connect_raw() as conn:
        after = [scalar(conn, f"SELECT count(*) FROM {table}") for table in DEMO_TABLES]
        catalog = demo_catalog(conn)
    assert after == before
    assert catalog == empty  # every deferred index and foreign key is back, as it was


def test_loading_is_refused_when_only_the_catalog_has_rows(db):
    # A database whose projects are configured is not empty either: the demo never mixes.
    with db.connect_raw() as conn:
        conn.execute("""INSERT INTO projects ("projectID", lang, "projectName") VALUES (7, 'en', 'Live project')""")
        conn.commit()
    with pytest.raises(ValueError, match="'projects' already has rows"):
        generate_and_load(db, users=50, months=1, seed=1)
    with db.connect_raw() as conn:
        assert scalar(conn, "SELECT count(*) FROM users") == 0


@pytest.mark.skipif(not DUMP.exists(), reason="no shared/platform/schema.sql beside this clone")
def test_the_demo_loads_into_tables_the_platform_created(empty_db):
    with empty_db.connect_raw(autocommit=True) as conn:
        conn.execute(DUMP.read_text())
        made = demo_catalog(conn)
    data = generate_and_load(empty_db, users=500, months=2, seed=3)
    with empty_db.connect_raw() as conn:
        for table, frame in data.tables():
            assert scalar(conn, f"SELECT count(*) FROM {table}") == frame.height, table
        assert demo_catalog(conn) == made


@pytest.fixture
def owner_only(db, server_uri):
    """``db`` reached through a role that owns the platform's tables but is no superuser (as on a platform)."""
    role = f"mlm_demo_owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    with db.connect_raw(autocommit=True) as conn:
        conn.execute(f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"')
        for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall():
            conn.execute(f'ALTER TABLE public."{table}" OWNER TO "{role}"')
    try:
        yield Database(uri=psycopg.conninfo.make_conninfo(db.uri, user=role), engine=db.engine)
    finally:
        with db.connect_raw(autocommit=True) as conn:
            conn.execute(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER')
            conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(server_uri, autocommit=True) as admin:
            admin.execute(f'DROP ROLE "{role}"')


def test_a_role_that_is_no_superuser_loads_with_each_foreign_key_checked_once(owner_only):
    with owner_only.connect_raw() as conn:
        assert not scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        made = demo_catalog(conn)
    data = generate_and_load(owner_only, users=300, months=2, seed=4)
    with owner_only.connect_raw() as conn:
        assert scalar(conn, "SELECT count(*) FROM bonuses") == data.bonuses.height > 0
        assert demo_catalog(conn) == made


def test_a_broken_reference_fails_the_check_and_loads_nothing(owner_only):
    data = demo_frames(300, 2, 4)
    broken = DemoData(
        users=data.users,
        purchases=data.purchases,
        projects=data.projects,
        options=data.options,
        bonuses=data.bonuses.with_columns(pl.lit(999_999, dtype=pl.Int32).alias("downlineID")),
    )
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="downlineID"):
        load_demo(owner_only, broken)
    with owner_only.connect_raw() as conn:
        assert [scalar(conn, f"SELECT count(*) FROM {table}") for table in DEMO_TABLES] == [0] * len(DEMO_TABLES)


def test_a_generation_that_fails_midway_leaves_the_tables_as_they_were(db):
    data = demo_frames(200, 2, 5)
    with db.connect_raw() as conn:
        made = demo_catalog(conn)
    with pytest.raises(RuntimeError, match="generator broke"):
        with DemoLoader(db) as loader:
            for table, frame in data.tables()[:3]:
                loader.load(table, frame)
            raise RuntimeError("the generator broke")
    with db.connect_raw() as conn:
        assert [scalar(conn, f"SELECT count(*) FROM {table}") for table in DEMO_TABLES] == [0] * len(DEMO_TABLES)
        assert demo_catalog(conn) == made


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="YYYY-MM"):
        demo_frames(10, 1, 1, end_month="2025-13")
    with pytest.raises(ValueError, match="users"):
        demo_frames(0, 1, 1)


def test_the_demo_ranks_and_rates_are_the_default_plans():
    # The demo writes a platform's history (stored ranks, commissions) as of the default plan;
    # a plan edit that the demo did not follow fails here.
    from db.demo import RANK_RATE_BP
    from db.demo_documents import RANKS
    from flows.config import load_plan

    plan = load_plan()
    assert list(RANKS) == plan.rank_names
    assert [int(r.rate * 10_000) for r in plan.ranks] == list(RANK_RATE_BP)

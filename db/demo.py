"""A reproducible demo platform: a skewed referral tree, months of purchases, stale documents.

The generator builds the platform's tables the recompute meets (``projects``, ``options``,
``users``, ``purchases``, ``bonuses``) as Polars frames, entirely with vectorized numpy/Polars
operations (no Python loop over users or purchases), from one seeded
``numpy.random.default_rng``: the same arguments always give the same frames. The loader
(``db.demo_load``) puts them into those tables, empty, with PostgreSQL COPY in one
transaction, each table while the next is generated; the tables may be the project's
(``db.migrate.prepare``) or the platform's own (they are the same, column for column).

What the data looks like, and why:

- **Tree.** User 1 is the root (telegramID 1,000,000,000, its upline is itself). Every other
  user's sponsor is an earlier user, so there are no cycles and the root reaches everyone. A
  sponsor is drawn in proportion to a static, heavy-tailed "recruiting power" (30% of users
  recruit at all, with Pareto weights), mostly among recently joined users (which makes the
  tree deep: into the thirties at 10k users) and otherwise among all earlier ones (which, with
  the heavy tail, makes hubs with hundreds of referrals); 1.5% of users join under the root
  directly, as on a platform whose default referrer is the root. Because the weights are
  static, each user's sponsor is one ``searchsorted`` on a cumulative sum: no sequential
  preferential attachment. Three explicit chains of 55-80 users (one referral each, joined at
  random times) hang below random users, so some users sit more than 50 levels below the root
  (the plan's depth limit).
- **Catalog.** Three projects, each described in two languages (``projects``: one row per
  project and language), and one option per project and pack price (``options``: 3 x 8); an
  option's pack quantity is its price over the project's cost per share, exactly.
- **Purchases.** Over ``months`` calendar months ending with ``end_month``. Users fall into
  segments (never buy, occasional, regular, every month); a user buys only from the month it
  joined, never before its ``createdAt``. Active months get one purchase plus a Poisson number
  more, in proportion to a per-user intensity, so the average is about ``purchases_per_user``
  over the period. Packs of 50..10,000 USD, skewed toward small packs; 3% are >= 5,000 USD, so
  pioneer candidates are plentiful. Each purchase is one option of one project (its
  ``optionID``, ``projectID``, ``projectName``, ``packQty`` and ``packPrice`` are the
  option's); ``ownerTelegramID`` is the buyer's, ``updatedAt`` = ``createdAt`` (never edited).
  ``ownerEmail`` is left NULL: the recompute never reads it, and at 10M purchases its index
  alone took longer to build than the purchases' other two. Prices are integer cents rendered
  as decimal strings.
- **Bonuses.** A level-1 commission to the buyer's sponsor for a tenth of the purchases
  (``BONUS_SHARE``, drawn at random; the root's own purchases have none), at the plan's rate of
  the sponsor's stored rank, created at the purchase's time: ``bonusAmount`` = rate x price in
  exact cents. Only a fraction, for time: at 10M purchases, a bonus for each would cost the
  load about as much again as the purchases themselves (~17 columns a row); a tenth already
  gives ``monthly_stats."commissionsEarned"`` (a user's bonuses created in the month) something
  to sum for many users in every month.
- **Users' profiles.** Everyone has a Telegram first name, a language, a status, a last-active
  time and balances (mostly zero); 60% filled in their data (surname, email, birthday, address,
  phone, city, country; a passport once KYC started); a few are midway through a bot dialogue
  (``stateFSM``). ``"fullVolume"``, ``"teamVolumeTotal"`` and ``"personalVolumeTotal"`` are
  never NULL (0.00, the platform's Python default, except for the stale users below).
- **Stored documents** (``db.demo_documents``). Mostly the platform's Python defaults, as its
  models write them for every new user: ``mlmStatus`` with its JSON nulls (``{"rankQualifiedAt":
  null, "assignedRank": null, "isFounder": false, ...}``), ``mlmVolumes`` with autoship
  settings (enabled for a few), ``personalData`` (EULA accepted, KYC status),
  ``emailVerification`` for users with an email, ``settings`` (strategy, notifications,
  display). 8% are **migrated** users (rows a legacy import wrote without the models: every
  JSON document NULL, volumes zero, an email); ``totalVolume`` is NULL except for stale users.
  As on a platform whose writes were lost, ~1-2% of users hold stale documents with keys the
  recompute must preserve (grace-day streaks, founders, ranks assigned by the admin) and stale
  scalar volumes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from db.connection import Database
from db.demo_documents import (
    ASSIGNABLE_RANKS,
    AUTOSHIP_AMOUNTS_USD,
    DEFAULT_MLM_STATUS,
    DEFAULT_MLM_VOLUMES,
    coded,
    email_verification_json,
    mlm_status_json,
    mlm_volumes_json,
    personal_data_json,
    rank_name,
    settings_json,
    total_volume_json,
)
from db.demo_load import DemoLoader
from transforms.money import cents_text

ROOT_TELEGRAM_ID = 1_000_000_000

PACK_PRICES_USD = (50, 100, 200, 500, 1000, 2500, 5000, 10000)
# Odds in percent, skewed toward small packs; the two packs at or above the pioneer threshold
# (5,000) make 3% of purchases.
PACK_PERCENT = (30, 25, 18, 12, 8, 4, 2, 1)

# The projects (projectID 1..3), their cost per share (it divides every pack price, so a pack
# is a whole number of shares), and the odds in percent that a purchase is of each.
PROJECT_NAMES = ("JETUP", "AQUIX", "SOLARA")
SHARE_COST_CENTS = (50, 100, 250)
PROJECT_PERCENT = (55, 30, 15)
PROJECT_LANGUAGES = ("en", "ru")  # each project is described in both
PROJECT_RATES = (0.12, 0.15, 0.09)  # the expected yearly return each project advertises

# The plan's commission rate of each rank (db.demo_documents.RANKS), in basis points
# (plans/default.toml); whole percents, so a commission on a whole-dollar pack is whole cents.
RANK_RATE_BP = (400, 800, 1200, 1500, 1800)
BONUS_SHARE = 0.1  # purchases with a (level-1) commission: see the module docstring

# Users join over this many months before the purchase window, and during it.
HISTORY_MONTHS = 12

# Tree shape (tuned over many seeds: at 10k users 5-9 sponsors have >= 100 referrals, ~78% of
# users have none, and the tree is 24-37 levels deep; at 1M users, 50-62 levels without the
# long chains, and the largest sponsors have thousands of referrals).
RECRUITER_SHARE = 0.30  # users who ever recruit
RECRUITER_PARETO_SHAPE = 1.2  # heavy tail of recruiting power ...
# ... capped, so one lucky recruiter cannot absorb every recent draw for long and flatten the
# tree (uncapped, the depth at 10k users swings between ~15 and ~40 from seed to seed).
RECRUITER_POWER_CAP = 3_000.0
ROOT_DIRECT_SHARE = 0.015  # users who joined without a referral link: under the root
RECENT_SHARE = 0.75  # sponsors drawn among recently joined recruiters ...
RECENT_SPAN = 0.25  # ... those among the latest 25% of the users joined so far
LONG_CHAINS = 3
LONG_CHAIN_LENGTHS = (55, 80)  # each chain's length is drawn in [55, 80)

# Buying segments: share of users, and each segment's chance of buying in a given month.
SEGMENT_SHARES = (0.20, 0.45, 0.25, 0.10)  # never, occasional, regular, every month
SEGMENT_MONTHLY_CHANCE = (0.0, 0.15, 0.50, 1.0)

# Shares of users in each kind of stored state.
MIGRATED_SHARE = 0.08  # every JSON document NULL
VOLUMES_SHARE = 0.02  # stale mlmVolumes and personalVolumeTotal
FOUNDER_SHARE = 0.015
STALE_STATUS_SHARE = 0.01  # a stale lastActiveMonth in mlmStatus
TOTAL_VOLUME_SHARE = 0.015  # a stale totalVolume and fullVolume
AUTOSHIP_SHARE = 0.06  # default mlmVolumes with autoship enabled
PERSONAL_DATA_SHARE = 0.95  # of the users the models made (the others never accepted the EULA)
SETTINGS_SHARE = 0.90  # likewise
PROFILE_SHARE = 0.60  # filled in their data (personalData.dataFilled)
EMAIL_CONFIRMED_SHARE = 0.80
ASSIGNED_RANK_USERS = 6  # a handful of founders hold a rank assigned by the admin

# Profiles: names, and cities with their country, phone prefix and language.
FIRST_NAMES = (
    "Alex", "Maria", "Ivan", "Anna", "Mehmet", "Elif", "Lukas", "Sophie",
    "Dmitry", "Olga", "Omar", "Layla", "John", "Emma", "Sergey", "Natalia",
)  # fmt: skip
SURNAMES = (
    "Smith", "Brown", "Ivanov", "Petrova", "Sokolov", "Yilmaz", "Demir", "Kaya",
    "Muller", "Schmidt", "Weber", "Kovalenko", "Bondarenko", "Akhmetov", "Hassan", "Miller",
)  # fmt: skip
CITIES = ("Berlin", "Munich", "Moscow", "Kazan", "Kyiv", "Almaty", "Istanbul", "Dubai", "New York")
CITY_COUNTRIES = ("DE", "DE", "RU", "RU", "UA", "KZ", "TR", "AE", "US")
CITY_PHONE_PREFIXES = ("+49", "+49", "+7", "+7", "+380", "+7", "+90", "+971", "+1")
CITY_LANGUAGES = ("de", "de", "ru", "ru", "ru", "ru", "tr", "en", "en")
LOCAL_LANGUAGE_SHARE = 0.8  # the others use the bot in English
STREETS = ("Main", "Park", "Garden", "Lake", "Station", "Market", "Hill", "River")
EMAIL_DOMAINS = ("gmail.com", "mail.ru", "yandex.ru", "outlook.com", "gmx.de")
USER_STATUSES = ("active", "blocked")
USER_STATUS_PERCENT = (98, 2)
BOT_STATES = ("waiting_email", "waiting_phone", "waiting_payment")  # a dialogue left midway
BOT_STATE_SHARE = 0.03
KYC_PERCENT = (45, 15, 35, 5)  # of the users who filled in their data; the others: not_started
STRATEGY_PERCENT = (55, 25, 15, 5)
PASSPORT_SERIES = ("AB", "CK", "KM", "PT", "XR")
MIGRATION_NOTE = "migrated from the legacy sheet"

PROJECT_COLUMNS = ("id", "projectID", "lang", "projectName", "projectTitle", "fullText", "status", "rate")
OPTION_COLUMNS = ("optionID", "projectID", "projectName", "costPerShare", "packQty", "packPrice", "isActive")
USER_COLUMNS = (
    "userID", "telegramID", "upline", "createdAt",
    "email", "firstname", "surname", "birthday", "address", "phoneNumber", "city", "country", "passport",
    "lang", "status", "lastActive", "balanceActive", "balancePassive",
    "rank", "isActive", "fullVolume", "totalVolume", "teamVolumeTotal", "personalVolumeTotal",
    "mlmStatus", "mlmVolumes", "personalData", "emailVerification", "settings", "notes", "stateFSM",
)  # fmt: skip
PURCHASE_COLUMNS = (
    "purchaseID", "userID", "optionID", "projectID", "projectName", "packQty", "packPrice",
    "ownerTelegramID", "ownerEmail", "createdAt", "updatedAt",
)  # fmt: skip
BONUS_COLUMNS = (
    "bonusID", "userID", "downlineID", "purchaseID", "projectID", "optionID", "packQty", "packPrice",
    "commissionType", "uplineLevel", "bonusRate", "bonusAmount", "compressionApplied", "status",
    "ownerTelegramID", "createdAt", "updatedAt",
)  # fmt: skip

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class DemoData:
    """The demo platform's tables, one frame each: ``projects`` (one row per project and
    language), ``options`` (one per project and pack price), ``users`` (one per user),
    ``purchases`` (one per purchase), ``bonuses`` (one per commission paid).

    Columns are named exactly as the platform's SQL columns. Money columns are decimal strings
    rendered from integer cents ("1500.00"); JSON columns are JSON text or null; timestamps are
    naive UTC datetimes.
    """

    users: pl.DataFrame
    purchases: pl.DataFrame
    projects: pl.DataFrame
    options: pl.DataFrame
    bonuses: pl.DataFrame

    def tables(self) -> tuple[tuple[str, pl.DataFrame], ...]:
        """(table, frame) for every table, each frame with exactly the table's loaded columns."""
        frames = {"projects": self.projects, "options": self.options, "users": self.users, "purchases": self.purchases, "bonuses": self.bonuses}
        return tuple((table, table_frame(table, frame)) for table, frame in frames.items())


# The loaded columns of each table (the platform's others stay NULL).
TABLE_COLUMNS = {
    "projects": PROJECT_COLUMNS,
    "options": OPTION_COLUMNS,
    "users": USER_COLUMNS,
    "purchases": PURCHASE_COLUMNS,
    "bonuses": BONUS_COLUMNS,
}
# Receives each table's frame as soon as it is generated (see DemoLoader).
TableSink = Callable[[str, pl.DataFrame], None]


def table_frame(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with exactly ``table``'s loaded columns, in order."""
    return frame.select(TABLE_COLUMNS[table])


def _ignore(table: str, frame: pl.DataFrame) -> None:
    """A TableSink that keeps nothing."""


# --- the generator ---------------------------------------------------------------------------


def demo_frames(
    users: int,
    months: int,
    seed: int,
    end_month: str = "2025-10",
    purchases_per_user: float = 10.0,
    on_table: TableSink = _ignore,
) -> DemoData:
    """The demo platform for ``seed``: every table's rows, reproducible. ``on_table`` receives each
    table's frame as soon as it is made: purchases (the largest) before users, so a loader can
    COPY them while the users' documents are rendered."""
    if users < 1:
        raise ValueError(f"users must be at least 1 (the root), got {users}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    if purchases_per_user < 0:
        raise ValueError(f"purchases_per_user must not be negative, got {purchases_per_user}")
    rng = np.random.default_rng(seed)
    bounds = month_bounds(end_month, months)
    sponsors = sponsor_index(users, rng)
    joined = join_seconds(users, bounds, rng)
    telegram = telegram_ids(users, rng)
    projects, options = projects_frame(), options_frame()
    on_table("projects", table_frame("projects", projects))
    on_table("options", table_frame("options", options))
    purchases = purchases_frame(joined, telegram, bounds, purchases_per_user, rng)
    on_table("purchases", table_frame("purchases", purchases))
    draws = user_draws(joined, bounds, rng)
    ranks = stored_rank_index(draws)
    users_table = users_frame(sponsors, joined, telegram, draws)
    del draws  # ~250 MB at 1M users, no longer needed while the bonuses are made
    on_table("users", table_frame("users", users_table))
    bonuses = bonuses_frame(purchases, sponsors, telegram, ranks, rng)
    on_table("bonuses", table_frame("bonuses", bonuses))
    return DemoData(users=users_table, purchases=purchases, projects=projects, options=options, bonuses=bonuses)


def month_bounds(end_month: str, months: int) -> np.ndarray:
    """Epoch seconds of the window's month boundaries: ``months + 1`` values, up to the 1st after ``end_month``."""
    if not _MONTH.match(end_month):
        raise ValueError(f"end_month must be YYYY-MM, got {end_month!r}")
    last = np.datetime64(end_month, "M")
    starts = last - np.arange(months - 1, -2, -1)
    return starts.astype("datetime64[s]").astype(np.int64)


# --- the tree ----------------------------------------------------------------------------------


def sponsor_index(users: int, rng: np.random.Generator) -> np.ndarray:
    """Each user's sponsor as a 0-based user index (always an earlier user; the root is its own): one per user."""
    lengths = chain_lengths(users, rng)
    chain_positions = rng.choice(np.arange(max(1, users // 5), users), size=int(lengths.sum()), replace=False)
    is_core = np.ones(users, dtype=bool)
    is_core[chain_positions] = False
    core = np.flatnonzero(is_core)  # sorted, so "earlier in the core" stays "earlier overall"
    sponsors = np.empty(users, dtype=np.int64)
    sponsors[core] = core[core_sponsor_index(len(core), rng)]
    chain_nodes, chain_parents = chain_links(lengths, chain_positions, core, rng)
    sponsors[chain_nodes] = chain_parents
    return sponsors


def chain_lengths(users: int, rng: np.random.Generator) -> np.ndarray:
    """The lengths of the explicit long chains, scaled down to a tenth of the users for tiny demos."""
    lengths = rng.integers(*LONG_CHAIN_LENGTHS, size=LONG_CHAINS)
    budget = (users - 1) // 10
    if lengths.sum() > budget:
        lengths = lengths * budget // lengths.sum()
    return lengths[lengths > 0]


def core_sponsor_index(n: int, rng: np.random.Generator) -> np.ndarray:
    """Sponsors in the main tree, by index among its ``n`` users (index 0, the root, sponsors itself)."""
    index = np.arange(n)
    recruits = rng.random(n) < RECRUITER_SHARE
    power = np.where(recruits, np.minimum(rng.pareto(RECRUITER_PARETO_SHAPE, n) + 1.0, RECRUITER_POWER_CAP), 0.0)
    # The root always has a candidate's weight (so every draw finds a sponsor), but only a
    # small one: its many direct referrals come from ROOT_DIRECT_SHARE, and a heavy root would
    # absorb the early users and flatten the tree.
    power[0] = 1.0
    cumulative = np.cumsum(power)
    # A sponsor is a point drawn uniformly in the recruiting power of the candidates: all users
    # joined before, or (recent draws) those among the latest RECENT_SPAN of them.
    high = cumulative[np.maximum(index - 1, 0)]
    window_start = np.floor(index * (1.0 - RECENT_SPAN)).astype(np.int64)
    recent_low = np.where(window_start > 0, cumulative[np.maximum(window_start - 1, 0)], 0.0)
    low = np.where(rng.random(n) < RECENT_SHARE, recent_low, 0.0)
    target = low + (high - low) * rng.random(n)
    sponsors = np.searchsorted(cumulative, target, side="right")
    # Float rounding can land on the user itself; the user just before is the recent recruiter.
    sponsors = np.minimum(sponsors, np.maximum(index - 1, 0))
    sponsors = np.where(rng.random(n) < ROOT_DIRECT_SHARE, 0, sponsors)
    sponsors[0] = 0
    return sponsors


def chain_links(
    lengths: np.ndarray, positions: np.ndarray, core: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The chain users and their sponsors: the previous chain user, or for a chain's first an earlier core user."""
    if len(positions) == 0:
        return positions, positions
    chain = np.repeat(np.arange(len(lengths)), lengths)
    nodes = positions[np.lexsort((positions, chain))]  # each chain's users in joining order
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    parents = np.r_[-1, nodes[:-1]]
    earlier_core = np.searchsorted(core, nodes[first])  # >= 1: the root is always earlier
    parents[first] = core[(rng.random(len(first)) * earlier_core).astype(np.int64)]
    return nodes, parents


def join_seconds(users: int, bounds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each user's createdAt (epoch seconds), non-decreasing by userID, from ``history_start`` to the window's end."""
    start = history_start(bounds)
    joined = np.sort(rng.integers(start, bounds[-1], size=users))
    joined[0] = start  # the root was there first
    return joined


def history_start(bounds: np.ndarray) -> int:
    """Epoch seconds of the 1st of the month ``HISTORY_MONTHS`` before the window: when the platform began."""
    first_month = bounds[0].astype("datetime64[s]").astype("datetime64[M]")
    return int((first_month - HISTORY_MONTHS).astype("datetime64[s]").astype(np.int64))


def telegram_ids(users: int, rng: np.random.Generator) -> np.ndarray:
    """Each user's telegramID: unique, increasing with userID, with irregular gaps, never equal to a userID."""
    gaps = rng.integers(1, 5000, size=users)
    gaps[0] = 0
    return ROOT_TELEGRAM_ID + np.cumsum(gaps)


# --- the catalog: projects and their options ---------------------------------------------------


def projects_frame() -> pl.DataFrame:
    """The projects table: one row per project and language (id 1..), projectID 1.. in PROJECT_NAMES order."""
    catalog = pl.DataFrame(
        {"projectID": pl.Series(range(1, len(PROJECT_NAMES) + 1), dtype=pl.Int32), "projectName": PROJECT_NAMES, "rate": PROJECT_RATES}
    ).join(pl.DataFrame({"lang": PROJECT_LANGUAGES}), how="cross")
    return catalog.select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("id"),
        "projectID",
        "lang",
        "projectName",
        pl.format("{} ({})", "projectName", pl.col("lang").str.to_uppercase()).alias("projectTitle"),
        pl.format("{}: a demo investment project.", "projectName").alias("fullText"),
        pl.lit("active").alias("status"),
        "rate",
    )


def options_frame() -> pl.DataFrame:
    """The options table: one row per project and pack price, optionID 1.. by project then price."""
    project, pack = np.divmod(np.arange(len(PROJECT_NAMES) * len(PACK_PRICES_USD)), len(PACK_PRICES_USD))
    return pl.DataFrame(
        {
            "optionID": pl.Series(option_ids(), dtype=pl.Int32),
            "projectID": pl.Series(project + 1, dtype=pl.Int32),
            "projectName": pl.Series(np.asarray(PROJECT_NAMES)[project], dtype=pl.String),
            "cost_cents": np.asarray(SHARE_COST_CENTS, dtype=np.int64)[project],
            "packQty": pl.Series(option_pack_quantities(), dtype=pl.Int32),
            "price_cents": option_price_cents(),
        }
    ).select(
        "optionID",
        "projectID",
        "projectName",
        cents_text(pl.col("cost_cents")).alias("costPerShare"),
        "packQty",
        cents_text(pl.col("price_cents")).alias("packPrice"),
        pl.lit(True).alias("isActive"),
    )


def option_ids() -> np.ndarray:
    """Each option's optionID (1..), by option index (project-major, then pack)."""
    return np.arange(1, len(PROJECT_NAMES) * len(PACK_PRICES_USD) + 1, dtype=np.int32)


def option_price_cents() -> np.ndarray:
    """Each option's pack price in cents, by option index."""
    return np.tile(np.asarray(PACK_PRICES_USD, dtype=np.int64) * 100, len(PROJECT_NAMES))


def option_pack_quantities() -> np.ndarray:
    """Each option's pack quantity (shares per pack: the price over the project's cost per share), by option index."""
    cost = np.repeat(np.asarray(SHARE_COST_CENTS, dtype=np.int64), len(PACK_PRICES_USD))
    return (option_price_cents() // cost).astype(np.int32)


def option_project_index() -> np.ndarray:
    """Each option's project, as an index into PROJECT_NAMES, by option index."""
    return np.repeat(np.arange(len(PROJECT_NAMES)), len(PACK_PRICES_USD))


def option_values(values) -> pl.Series:
    """One text per option, by option index: a series to ``gather`` from by option index."""
    return pl.Series(list(values), dtype=pl.String)


# --- purchases ---------------------------------------------------------------------------------


def monthly_chance(users: int, months: int, purchases_per_user: float, rng: np.random.Generator) -> np.ndarray:
    """Each user's chance of buying in a given month (by segment), thinned when the target average is low."""
    segment = rng.choice(len(SEGMENT_SHARES), size=users, p=SEGMENT_SHARES)
    chance = np.asarray(SEGMENT_MONTHLY_CHANCE, dtype=np.float32)[segment]
    expected_active_months = months * float(np.dot(SEGMENT_SHARES, SEGMENT_MONTHLY_CHANCE))
    # Every active month holds at least one purchase, so fewer purchases need fewer active months.
    return chance * np.float32(min(1.0, purchases_per_user / expected_active_months))


def purchases_frame(
    joined: np.ndarray, telegram: np.ndarray, bounds: np.ndarray, purchases_per_user: float, rng: np.random.Generator
) -> pl.DataFrame:
    """The purchases: one row per purchase, purchaseID 1..N in (createdAt, userID) order, owned by the buyer."""
    user, month = purchase_user_months(joined, bounds, purchases_per_user, rng)
    created = purchase_seconds(user, month, joined, bounds, rng)
    del month
    order = time_order(created)
    user, created = user[order], created[order]
    option = option_index(len(user), rng)
    del order
    created_at = pl.from_epoch(pl.Series(created), time_unit="s")
    return pl.DataFrame(
        {
            "purchaseID": pl.Series(np.arange(1, len(user) + 1, dtype=np.int32)),
            "userID": pl.Series(user + 1, dtype=pl.Int32),
            "optionID": pl.Series(option_ids()[option]),
            "projectID": pl.Series(option_project_index()[option] + 1, dtype=pl.Int32),
            "projectName": option_values(np.asarray(PROJECT_NAMES)[option_project_index()]).gather(option),
            "packQty": pl.Series(option_pack_quantities()[option]),
            "packPrice": option_values(option_price_texts()).gather(option),
            "ownerTelegramID": pl.Series(telegram[user], dtype=pl.Int64),
            # Left NULL: the recompute never reads it, and at 10M purchases its index alone took
            # longer to build than the rest of the purchases' indexes together.
            "ownerEmail": pl.repeat(None, len(user), dtype=pl.String, eager=True),
            "createdAt": created_at,
            # Never edited since: the platform sets updatedAt with createdAt.
            "updatedAt": created_at,
        }
    )


def time_order(created: np.ndarray) -> np.ndarray:
    """The permutation that orders the purchases by time, ties in generation order (user by user, so by userID)."""
    # One sort of unique keys (time, then position) is deterministic, and several times faster
    # than numpy's stable argsort at 10M rows.
    if len(created) >= 2**32 or (len(created) and created.max() >= 2**31):
        raise ValueError("too many purchases, or times past 2038, for the time-order keys")
    position = np.arange(len(created), dtype=np.int64)
    keys = pl.Series((created.astype(np.int64) << 32) | position).sort()
    return (keys.to_numpy() & np.int64(2**32 - 1)).astype(np.int64)


def purchase_user_months(
    joined: np.ndarray, bounds: np.ndarray, purchases_per_user: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Who buys in which month: one (0-based user index, month index) pair per purchase, by user then month."""
    users, months = len(joined), len(bounds) - 1
    chance = monthly_chance(users, months, purchases_per_user, rng)
    intensity = rng.lognormal(0.0, 1.0, size=users)
    joined_before_end = joined[:, None] < bounds[None, 1:]
    active = joined_before_end & (rng.random((users, months), dtype=np.float32) < chance[:, None])
    pair_user, pair_month = np.nonzero(active)  # one per (user, month) with a purchase
    del active, joined_before_end
    # Each active month has one purchase; the rest of the target goes by intensity (Poisson).
    extra = max(0.0, round(users * purchases_per_user) - len(pair_user))
    weight = intensity[pair_user]
    expected_extra = weight * (extra / weight.sum()) if len(weight) else weight
    count = 1 + rng.poisson(expected_extra)
    return np.repeat(pair_user.astype(np.int32), count), np.repeat(pair_month, count)


def purchase_seconds(
    user: np.ndarray, month: np.ndarray, joined: np.ndarray, bounds: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Each purchase's createdAt in epoch seconds: uniform inside its month, never before its user joined."""
    earliest = np.maximum(bounds[month], joined[user])
    span = bounds[month + 1] - earliest
    return earliest + (rng.random(len(user)) * span).astype(np.int64)


def percent_draw(percents: tuple[int, ...], size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` indexes into ``percents`` drawn with those odds (whole percents summing to 100)."""
    # One uniform draw in 0..99 through a 100-slot table is exact for whole percents.
    slots = np.repeat(np.arange(len(percents), dtype=np.uint8), percents)
    return slots[rng.integers(0, 100, size=size, dtype=np.uint8)]


def option_index(purchases: int, rng: np.random.Generator) -> np.ndarray:
    """Each purchase's option, as an index into the options (project-major), with PROJECT_PERCENT x PACK_PERCENT odds."""
    project = percent_draw(PROJECT_PERCENT, purchases, rng)
    pack = percent_draw(PACK_PERCENT, purchases, rng)
    return project * np.uint8(len(PACK_PRICES_USD)) + pack


def option_price_texts() -> list[str]:
    """Each option's pack price as a decimal string rendered from integer cents ("50.00" .. "10000.00")."""
    return pl.select(cents_text(pl.lit(pl.Series("cents", option_price_cents())))).to_series().to_list()


# --- bonuses -----------------------------------------------------------------------------------


def bonuses_frame(
    purchases: pl.DataFrame, sponsors: np.ndarray, telegram: np.ndarray, ranks: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    """The bonuses: one row per level-1 commission, bonusID 1.. in purchase order, for BONUS_SHARE of the
    purchases (never the root's own), paid to the buyer's sponsor at its rank's rate when the purchase was made."""
    buyer = purchases["userID"].to_numpy() - 1
    paid = np.flatnonzero((rng.random(len(buyer)) < BONUS_SHARE) & (buyer != 0))
    buyer = buyer[paid]
    sponsor = sponsors[buyer]
    option = purchases["optionID"].to_numpy()[paid] - 1
    rate_bp = np.asarray(RANK_RATE_BP, dtype=np.int64)[ranks[sponsor]]
    # The purchase's own columns, read from its row: the bonus is about that purchase.
    purchase = purchases.select("purchaseID", "projectID", "optionID", "packQty", "packPrice", "createdAt")[paid]
    commission = pl.DataFrame(
        {
            "bonusID": pl.Series(np.arange(1, len(paid) + 1, dtype=np.int32)),
            "userID": pl.Series(sponsor + 1, dtype=pl.Int32),
            "downlineID": pl.Series(buyer + 1, dtype=pl.Int32),
            "rate_bp": rate_bp,
            "amount_cents": commission_cents(option_price_cents()[option], rate_bp),
            "ownerTelegramID": pl.Series(telegram[sponsor], dtype=pl.Int64),
        }
    )
    return pl.concat([commission, purchase], how="horizontal").select(
        "bonusID",
        "userID",
        "downlineID",
        "purchaseID",
        "projectID",
        "optionID",
        "packQty",
        "packPrice",
        pl.lit("differential").alias("commissionType"),
        pl.lit(1, dtype=pl.Int32).alias("uplineLevel"),
        rate_text(pl.col("rate_bp")).alias("bonusRate"),
        cents_text(pl.col("amount_cents")).alias("bonusAmount"),
        pl.lit(0, dtype=pl.Int32).alias("compressionApplied"),
        pl.lit("paid").alias("status"),
        "ownerTelegramID",
        "createdAt",
        pl.col("createdAt").alias("updatedAt"),
    )


def commission_cents(price_cents: np.ndarray, rate_bp: np.ndarray) -> np.ndarray:
    """Each commission in integer cents: price x rate, rounded half up to the cent (exact for whole-dollar
    packs at whole-percent rates, the demo's only ones)."""
    return (price_cents * rate_bp + 5_000) // 10_000


def rate_text(rate_bp: pl.Expr) -> pl.Expr:
    """A rate in basis points as the decimal string of numeric(6,5) ("0.04000")."""
    return rate_bp.replace_strict({bp: f"{bp // 10_000}.{bp % 10_000:04d}0" for bp in RANK_RATE_BP}, return_dtype=pl.String)


# --- users: the random inputs ------------------------------------------------------------------


def user_draws(joined: np.ndarray, bounds: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    """The random inputs of every user's stored columns: one row per user (flags, codes, amounts, times), numbers only."""
    return pl.concat([stored_state_draws(joined, bounds, rng), profile_draws(joined, bounds, rng)], how="horizontal")


def stored_state_draws(joined: np.ndarray, bounds: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    """The random inputs of the MLM state: one row per user (who holds which document, stale amounts, times)."""
    users, window_end = len(joined), bounds[-1]
    granted_at = later_seconds(joined, window_end, rng)
    not_root = np.arange(users) > 0  # the root keeps rank "start" and the default documents
    founder = (rng.random(users) < FOUNDER_SHARE) & not_root
    assigned = np.zeros(users, dtype=bool)
    assigned[rng.permutation(np.flatnonzero(founder))[:ASSIGNED_RANK_USERS]] = True
    # Founders and stale users hold documents, so they were not migrated.
    stale_status = (rng.random(users) < STALE_STATUS_SHARE) & ~founder & not_root
    has_volumes = (rng.random(users) < VOLUMES_SHARE) & not_root
    has_total = (rng.random(users) < TOTAL_VOLUME_SHARE) & not_root
    keeps_documents = founder | stale_status | has_volumes | has_total | ~not_root
    monthly_cents = rng.integers(0, 40, size=users) * 5_000
    return pl.DataFrame(
        {
            "row": np.arange(users, dtype=np.int64),
            "migrated": (rng.random(users) < MIGRATED_SHARE) & ~keeps_documents,
            "has_volumes": has_volumes,
            "autoship_on": rng.random(users) < AUTOSHIP_SHARE,
            "was_active": rng.random(users) < 0.5,
            "founder": founder,
            "stale_status": stale_status,
            "assigned": assigned,
            "rank_code": rng.integers(0, len(ASSIGNABLE_RANKS), size=users),
            "has_total": has_total,
            "monthly_cents": monthly_cents,
            "total_cents": monthly_cents + rng.integers(0, 400, size=users) * 5_000,
            "full_cents": rng.integers(0, 2_000, size=users) * 10_000,
            "grace_streak": rng.integers(0, 6, size=users),
            "autoship_code": rng.integers(0, len(AUTOSHIP_AMOUNTS_USD), size=users),
            "stale_month": bounds[rng.integers(0, len(bounds) - 1, size=users)],
            "granted_at": granted_at,
            "assigned_at": later_seconds(granted_at, window_end, rng),
            "calculated_at": later_seconds(np.maximum(joined, bounds[0]), window_end, rng),
        }
    )


def profile_draws(joined: np.ndarray, bounds: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    """The random inputs of the profile columns and the documents the recompute never writes: one row per user."""
    users, window_end = len(joined), bounds[-1]
    has_profile = rng.random(users) < PROFILE_SHARE
    has_profile[0] = True
    kyc = np.where(has_profile, percent_draw(KYC_PERCENT, users, rng), 0)
    eula_at = joined + rng.integers(0, 3_600, size=users)  # right after /start
    email_sent_at = later_seconds(eula_at, window_end, rng)
    return pl.DataFrame(
        {
            "has_profile": has_profile,
            "has_personal": rng.random(users) < PERSONAL_DATA_SHARE,
            "has_settings": rng.random(users) < SETTINGS_SHARE,
            "first_code": rng.integers(0, len(FIRST_NAMES), size=users, dtype=np.uint8),
            "surname_code": rng.integers(0, len(SURNAMES), size=users, dtype=np.uint8),
            "city_code": rng.integers(0, len(CITIES), size=users, dtype=np.uint8),
            "speaks_local": rng.random(users) < LOCAL_LANGUAGE_SHARE,
            "domain_code": rng.integers(0, len(EMAIL_DOMAINS), size=users, dtype=np.uint8),
            "street_code": rng.integers(0, len(STREETS), size=users, dtype=np.uint8),
            "house_number": rng.integers(1, 200, size=users, dtype=np.int32),
            # Born 1960-01-01 .. 2005-12-31, as days since the epoch.
            "birth_day": rng.integers(-3_653, 13_149, size=users, dtype=np.int32),
            "phone_digits": rng.integers(100_000_000, 1_000_000_000, size=users, dtype=np.int64),
            "passport_series": rng.integers(0, len(PASSPORT_SERIES), size=users, dtype=np.uint8),
            "passport_number": rng.integers(1_000_000, 10_000_000, size=users, dtype=np.int32),
            "status_code": percent_draw(USER_STATUS_PERCENT, users, rng),
            "last_active": later_seconds(joined, window_end, rng),
            "balance_active_cents": balance_cents(users, 0.3, 1_000, rng),
            "balance_passive_cents": balance_cents(users, 0.2, 300, rng),
            "in_dialogue": rng.random(users) < BOT_STATE_SHARE,
            "bot_state_code": rng.integers(0, len(BOT_STATES), size=users, dtype=np.uint8),
            "kyc_code": kyc.astype(np.uint8),
            "eula_at": eula_at,
            "kyc_verified_at": later_seconds(eula_at, window_end, rng),
            "email_sent_at": email_sent_at,
            "email_confirmed": rng.random(users) < EMAIL_CONFIRMED_SHARE,
            "email_confirmed_at": email_sent_at + rng.integers(60, 86_400, size=users),
            "email_attempts": rng.integers(1, 4, size=users, dtype=np.int32),
            "email_token": email_tokens(users, rng),
            "strategy_code": percent_draw(STRATEGY_PERCENT, users, rng),
            "notify_bonus": rng.random(users) < 0.9,
            "notify_purchase": rng.random(users) < 0.85,
            "show_balance": rng.random(users) < 0.95,
        }
    )


def later_seconds(start: np.ndarray, end: int, rng: np.random.Generator) -> np.ndarray:
    """A time uniform between each ``start`` and ``end`` (epoch seconds): one per element of ``start``."""
    return start + (rng.random(len(start)) * (end - start)).astype(np.int64)


def balance_cents(users: int, share: float, mean_usd: float, rng: np.random.Generator) -> np.ndarray:
    """A balance per user in integer cents: zero for most, exponential around ``mean_usd`` for ``share`` of them."""
    amount = (rng.exponential(mean_usd * 100, size=users)).astype(np.int64)
    return np.where(rng.random(users) < share, amount, 0)


def email_tokens(users: int, rng: np.random.Generator) -> pl.Series:
    """A random 32-character hex token per user (an email-confirmation link's)."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[rng.integers(0, 16, size=(users, 32), dtype=np.uint8)]
    # Hex digits are never NUL, so the fixed-width bytes keep all 32 characters.
    return pl.Series(np.ascontiguousarray(digits).view("S32").ravel()).cast(pl.String)


def stored_rank_index(draws: pl.DataFrame) -> np.ndarray:
    """Each user's stored rank as an index into RANKS (start, or the rank a founder was assigned): one per user."""
    return np.where(draws["assigned"].to_numpy(), draws["rank_code"].to_numpy() + 1, 0)


# --- users: the columns ------------------------------------------------------------------------


def users_frame(sponsors: np.ndarray, joined: np.ndarray, telegram: np.ndarray, draws: pl.DataFrame) -> pl.DataFrame:
    """The users table: one row per user, userID 1..N in createdAt order, upline = the sponsor's telegramID."""
    identity = pl.DataFrame(
        {
            "userID": pl.Series(np.arange(1, len(telegram) + 1, dtype=np.int32)),
            "telegramID": pl.Series(telegram, dtype=pl.Int64),
            "upline": pl.Series(telegram[sponsors], dtype=pl.Int64),
            "createdAt": pl.Series(joined),
        }
    ).with_columns(pl.from_epoch("createdAt", time_unit="s"))
    return pl.concat([identity, profile_columns(draws), stored_state(draws)], how="horizontal").select(USER_COLUMNS)


def profile_columns(draws: pl.DataFrame) -> pl.DataFrame:
    """The profile columns (names, contacts, language, status, balances, notes, bot state): one row per user."""
    filled = pl.col("has_profile")
    has_passport = pl.col("kyc_code") > 0  # KYC started
    return draws.select(
        pl.when(has_email()).then(email()).alias("email"),
        coded("first_code", FIRST_NAMES).alias("firstname"),
        pl.when(has_email()).then(coded("surname_code", SURNAMES)).alias("surname"),
        pl.when(filled).then(pl.from_epoch("birth_day", time_unit="d").dt.strftime("%Y-%m-%d")).alias("birthday"),
        pl.when(filled).then(pl.format("{} {} St", "house_number", coded("street_code", STREETS))).alias("address"),
        pl.when(filled).then(pl.format("{}{}", coded("city_code", CITY_PHONE_PREFIXES), "phone_digits")).alias("phoneNumber"),
        pl.when(filled).then(coded("city_code", CITIES)).alias("city"),
        pl.when(filled).then(coded("city_code", CITY_COUNTRIES)).alias("country"),
        pl.when(has_passport).then(pl.format("{}{}", coded("passport_series", PASSPORT_SERIES), "passport_number")).alias("passport"),
        pl.when("speaks_local").then(coded("city_code", CITY_LANGUAGES)).otherwise(pl.lit("en")).alias("lang"),
        coded("status_code", USER_STATUSES).alias("status"),
        pl.from_epoch("last_active", time_unit="s").alias("lastActive"),
        cents_text(pl.col("balance_active_cents")).alias("balanceActive"),
        cents_text(pl.col("balance_passive_cents")).alias("balancePassive"),
        pl.when("migrated").then(pl.lit(MIGRATION_NOTE)).alias("notes"),
        pl.when("in_dialogue").then(coded("bot_state_code", BOT_STATES)).alias("stateFSM"),
    )


def has_email() -> pl.Expr:
    """Whether a user has an email address: it filled in its profile, or a legacy import (keyed by email) made it."""
    return pl.col("has_profile") | pl.col("migrated")


def email() -> pl.Expr:
    """A user's email address ("anna.petrova123@mail.ru"), unique by the userID in it."""
    name = pl.format("{}.{}{}", coded("first_code", FIRST_NAMES), coded("surname_code", SURNAMES), pl.col("row") + 1)
    return pl.format("{}@{}", name.str.to_lowercase(), coded("domain_code", EMAIL_DOMAINS))


# --- users: stored state (scalar MLM columns and JSON documents) ---------------------------------


def stored_state(draws: pl.DataFrame) -> pl.DataFrame:
    """The platform's stored rank, scalars and JSON documents: one row per user, mostly the models' defaults."""
    models_made = ~pl.col("migrated")
    zero = "0.00"  # the platform's Python default of its volume columns
    return draws.select(
        pl.when("assigned").then(rank_name()).otherwise(pl.lit("start")).alias("rank"),
        (pl.col("has_volumes") & pl.col("was_active")).alias("isActive"),
    ).with_columns(
        sparse_text(draws, "has_total", cents_text(pl.col("full_cents")), default=zero).alias("fullVolume"),
        sparse_text(draws, "has_total", cents_text(pl.col("full_cents")), default=zero).alias("teamVolumeTotal"),
        sparse_text(draws, "has_volumes", cents_text(pl.col("total_cents")), default=zero).alias("personalVolumeTotal"),
        document_text(draws, pl.col("founder") | pl.col("stale_status"), mlm_status_json(), DEFAULT_MLM_STATUS).alias("mlmStatus"),
        document_text(draws, pl.col("has_volumes") | pl.col("autoship_on"), mlm_volumes_json(), DEFAULT_MLM_VOLUMES).alias("mlmVolumes"),
        sparse_text(draws, "has_total", total_volume_json()).alias("totalVolume"),
        sparse_text(draws, models_made & pl.col("has_personal"), personal_data_json()).alias("personalData"),
        sparse_text(draws, models_made & has_email(), email_verification_json()).alias("emailVerification"),
        sparse_text(draws, models_made & pl.col("has_settings"), settings_json()).alias("settings"),
    )


def sparse_text(draws: pl.DataFrame, holders: str | pl.Expr, value: pl.Expr, default: str | None = None) -> pl.Series:
    """``value`` for the rows where ``holders`` is true, ``default`` elsewhere: one text per row of ``draws``.

    Evaluated on the holders only: where they are few, a ``when/then`` would render every row.
    """
    held = draws.filter(holders)
    values = held.select(value).to_series()
    return pl.repeat(default, draws.height, dtype=pl.String, eager=True).scatter(held["row"], values)


def document_text(draws: pl.DataFrame, holders: pl.Expr, value: pl.Expr, default: str) -> pl.Series:
    """A document the models write for every user: ``value`` for ``holders``, the models' ``default`` for the
    other users they made, NULL for migrated users; one text per row of ``draws``."""
    rendered = sparse_text(draws, holders, value, default)
    return rendered.scatter(draws["row"].filter(draws["migrated"]), None)


# --- loading -------------------------------------------------------------------------------------


def load_demo(db: Database, data: DemoData) -> None:
    """Load the demo frames into the empty demo tables by COPY, in one transaction."""
    with DemoLoader(db) as loader:
        for table, frame in data.tables():
            loader.load(table, frame)


def generate_and_load(
    db: Database,
    users: int,
    months: int,
    seed: int,
    purchases_per_user: float = 10.0,
    end_month: str = "2025-10",
) -> DemoData:
    """Generate the demo platform and load it into ``db``, each table COPYed while the next is made; the loaded frames."""
    with DemoLoader(db) as loader:
        return demo_frames(users, months, seed, end_month=end_month, purchases_per_user=purchases_per_user, on_table=loader.load)

"""Write a recompute's results: whole JSON values merged at the database, set-based.

The platform lost writes because it changed JSON values in place through the ORM. Here nothing
is changed in place: the computed documents are COPYed into a staging table and merged into
``users`` by one UPDATE, where ``stored || owned`` keeps every key the recompute does not own.
The rows to write are first locked and their prior values kept (``before_table``), so a client
that writes a foreign key mid-run either commits before the lock (and its key is merged) or
waits until the run commits; and validation can prove afterwards that nothing else changed.

Every function here runs inside the caller's transaction (see ``db.unit_of_work``).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator

import polars as pl
import psycopg
from psycopg import sql

from db.copy import copy_frame, copy_frames
from db.document_shapes import DEFAULT_DOCUMENTS
from db.schema import OWNED_USER_COLUMNS
from transforms.documents import PROVENANCE_KEYS
from transforms.fingerprints import HASH_VERSION, fingerprint
from transforms.money import cents_text
from transforms.recompute import Recomputed

# The keys of the merged documents that the recompute owns; every other key belongs to others.
OWNED_STATUS_KEYS = (
    "lastActiveMonth",
    "rankQualifiedAt",
    "hasPioneerBonus",
    "pioneerGrantedAt",
    "pioneerPurchaseId",
    "pioneerNumber",
    "pioneerPurchasesCount",
)
OWNED_VOLUME_KEYS = ("monthlyPV", "personalTotal")
OWNED_COLUMNS = OWNED_USER_COLUMNS
JSON_COLUMNS = ("mlmStatus", "mlmVolumes", "totalVolume")


def text_array(values) -> str:
    """A SQL ``text[]`` literal of fixed identifiers (never user data)."""
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]::text[]"


PROVENANCE = text_array(PROVENANCE_KEYS)
STATUS_KEYS = text_array(OWNED_STATUS_KEYS)
VOLUME_KEYS = text_array(OWNED_VOLUME_KEYS)


def untouched_digest(connection: psycopg.Connection) -> str:
    """SQL for a 64-bit digest of every column of ``users`` the recompute does not own (whatever
    other columns the platform has): equal digests mean none of them changed.

    The row of those columns is hashed by PostgreSQL's own record hash, each value in its binary
    form; a column whose type has no hash function (``json``, or ``varchar``, hashed as the
    ``text`` it is) is hashed as its text, which for ``json`` is the stored text unparsed.
    Measured at 1M users: 2.7 s against 5.8 s for an md5 of every column's text."""
    columns = connection.execute(
        """SELECT a.attname, EXISTS (SELECT FROM pg_opclass AS o JOIN pg_am AS m ON m.oid = o.opcmethod
                                     WHERE m.amname = 'hash' AND o.opcdefault AND o.opcintype = a.atttypid)
           FROM pg_attribute AS a
           WHERE a.attrelid = 'users'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"""
    ).fetchall()
    values = [f'u."{name}"' if hashable else f'u."{name}"::text' for name, hashable in columns if name not in OWNED_COLUMNS]
    return f"hash_record_extended(ROW({', '.join(values)}), 0)"


def _jsonb_literal(document: dict) -> str:
    return "'" + json.dumps(document).replace("'", "''") + "'::jsonb"


# The platform's default documents (db.document_shapes): a key the platform's code expects in
# every mlmStatus/mlmVolumes (isFounder, assignedRank, autoship, ...) and that a stored document
# lacks (a NULL document, a user migrated without one) is written with its documented default,
# so the platform's own code reads every documented key. A stored value always wins over it.
STATUS_DEFAULTS = _jsonb_literal(DEFAULT_DOCUMENTS["mlmStatus"])
VOLUME_DEFAULTS = _jsonb_literal(DEFAULT_DOCUMENTS["mlmVolumes"])


def merged_document(defaults: str, stored: str, staged: str) -> str:
    """SQL: what a write stores: the defaults, then the stored keys over them, then the staged
    (owned) keys over those. ``stored`` is jsonb, possibly NULL."""
    return f"({defaults} || COALESCE({stored}, '{{}}'::jsonb) || {staged})"


MERGED_STATUS = merged_document(STATUS_DEFAULTS, 'u."mlmStatus"::jsonb', "s.mlm_status")
MERGED_VOLUMES = merged_document(VOLUME_DEFAULTS, 'u."mlmVolumes"::jsonb', "s.mlm_volumes")
# The same merge in the UPDATE, from the prior documents the lock kept (already parsed): the rows
# are locked, so they are the stored ones, and the UPDATE need not parse them again.
WRITTEN_STATUS = merged_document(STATUS_DEFAULTS, "b.mlm_status", "s.mlm_status")
WRITTEN_VOLUMES = merged_document(VOLUME_DEFAULTS, "b.mlm_volumes", "s.mlm_volumes")

# A user needs writing when any owned value differs from what the merge would store.
DIFFERS = f"""(   u."rank" IS DISTINCT FROM s.rank
       OR u."isActive" IS DISTINCT FROM s.is_active
       OR u."fullVolume" IS DISTINCT FROM s.full_volume
       OR u."teamVolumeTotal" IS DISTINCT FROM s.full_volume
       OR u."personalVolumeTotal" IS DISTINCT FROM s.personal_volume_total
       OR u."mlmStatus"::jsonb IS DISTINCT FROM {MERGED_STATUS}
       OR u."mlmVolumes"::jsonb IS DISTINCT FROM {MERGED_VOLUMES}
       OR (u."totalVolume"::jsonb - {PROVENANCE}) IS DISTINCT FROM (s.total_volume - {PROVENANCE}))"""
# totalVolume, the largest document, comes last: where anything else already differs, its
# stored text is not parsed (PostgreSQL stops at the first true term of an OR).


# The users row's version: the id of the transaction that wrote it (xmin). Any UPDATE, by
# anyone, gives the row a new xmin; freezing keeps it (PostgreSQL >= 9.4). Equal to the version
# recorded after the last run compared the row means nobody has written it since. A dump and
# restore changes every xmin, which only makes the next run compare every user once.
ROW_VERSION = 'u."xmin"::text::bigint'


def users_to_stage(recomputed: Recomputed) -> Iterator[pl.DataFrame]:
    """The documents of the users the write has to look at, a batch at a time: every user except
    those whose row nobody wrote since the last run compared it (same row version) and whose
    computed values are what that run computed (same fingerprint). For those, stored equals
    computed already.

    Decided in the frame, sending the database nothing: each document carries the fingerprint
    the extract read with the user's row (``stored_fingerprint``: null unless recorded for the
    row version the extract's snapshot saw, under this ``HASH_VERSION``). A user is staged when
    it is null or differs from the computed fingerprint. A platform write to a row after the
    extract's snapshot is not seen by this run's skip, but by the next run's: the row version
    moved, so the next extract reads no stored fingerprint for it and it is compared then.

    The staged users' computed fingerprints go into the staging table with their documents,
    for ``record_fingerprints``.
    """
    stored = pl.col("stored_fingerprint")
    for batch in recomputed.document_batches():
        yield batch.filter(stored.is_null() | (stored != pl.col("fingerprint")))


def hold_users(connection: psycopg.Connection) -> None:
    """Take, at the start of the write transaction, the lock on ``users`` every read of it takes
    (ACCESS SHARE), held to commit: a schema change to ``users`` queued during the write waits
    for the commit instead of running between the staging and the lock of the rows to write.
    (The users to stage are picked in the frames now, so no earlier statement reads users.)"""
    connection.execute("LOCK TABLE users IN ACCESS SHARE MODE")


def record_fingerprints(connection: psycopg.Connection, table: str, run_id: int, *, all_written: bool) -> int:
    """Remember, for every staged user whose stored owned values now equal the computed ones,
    the row's version and the fingerprint of what was computed (from the staging table).

    Written users are locked until commit, so their version is this run's write. For the others
    the comparison and the version are read in this one statement, from the same row version.
    """
    # ``all_written``: every staged user was written, so no other row needs looking at.
    compared_equal = f"""
            UNION ALL
            SELECT s.user_id, {ROW_VERSION}, s.fingerprint, %(version)s, %(run_id)s
            FROM {quoted(table)} AS s JOIN users AS u ON u."userID" = s.user_id
            WHERE NOT EXISTS (SELECT FROM {quoted(written_table(table))} AS w WHERE w.user_id = s.user_id) AND NOT {DIFFERS}"""
    return connection.execute(
        f"""INSERT INTO mlm_user_fingerprints AS f (user_id, row_version, computed_hash, hash_version, run_id)
            SELECT w.user_id, w.row_version, s.fingerprint, %(version)s, %(run_id)s
            FROM {quoted(written_table(table))} AS w JOIN {quoted(table)} AS s ON s.user_id = w.user_id
            {"" if all_written else compared_equal}
            ON CONFLICT (user_id) DO UPDATE SET row_version = EXCLUDED.row_version, computed_hash = EXCLUDED.computed_hash,
                hash_version = EXCLUDED.hash_version, run_id = EXCLUDED.run_id""",
        {"version": HASH_VERSION, "run_id": run_id},
    ).rowcount


def staging_table(run_id: int) -> str:
    return f"mlm_staging_{run_id}"


def before_table(table: str) -> str:
    """The prior values of the users a run is about to write, next to its staging table. A
    regular unlogged table, not a temporary one, so that PostgreSQL may scan it with parallel
    workers (it cannot for a temporary table), which the validation's reads over every written
    user need on a first run; created and dropped inside the write transaction, so it never
    outlives it, whether the run commits, rolls back or dies."""
    return f"{table}_before"


def written_table(table: str) -> str:
    """The table of the users a run wrote, next to its staging table and outliving the commit
    with it: the verification after commit re-reads exactly these."""
    return f"{table}_written"


_STAGING_NAME = re.compile(r"^mlm_[a-z0-9_]+$")


def quoted(table: str) -> str:
    """A staging table's name, quoted; only the project's own ``mlm_`` names are accepted."""
    if not _STAGING_NAME.match(table):
        raise ValueError(f"not a staging table name: {table!r}")
    return f'"{table}"'




def cents_as_decimal_text(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Integer-cent columns as exact decimal text, which COPY turns into numeric."""
    return frame.with_columns(cents_text(pl.col(c)).alias(c) for c in columns)


def json_column_types(connection: psycopg.Connection) -> dict[str, str]:
    """``json`` or ``jsonb`` for each JSON column of ``users``, as this database has them."""
    rows = connection.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = 'users' AND column_name = ANY(%s)""",
        [list(JSON_COLUMNS)],
    ).fetchall()
    return dict(rows)


STAGED_COLUMNS = [
    "user_id",
    "rank",
    "is_active",
    "full_volume",
    "personal_volume_total",
    "mlm_volumes",
    "mlm_status",
    "total_volume",
    "rank_rose",
    "fingerprint",
]


def staged_rows(documents: pl.DataFrame) -> pl.DataFrame:
    """``documents`` as the staging table's columns, money as exact decimal text."""
    return documents.with_columns(
        cents_text(pl.col("full_volume_cents")).alias("full_volume"),
        cents_text(pl.col("personal_volume_total_cents")).alias("personal_volume_total"),
    ).select(STAGED_COLUMNS)


def stage_documents(connection: psycopg.Connection, batches: Iterable[pl.DataFrame], table: str) -> int:
    """COPY computed documents, a frame at a time as ``users_to_stage`` yields them, into
    ``table`` (unlogged: it is scratch, kept only until the run has verified what it committed),
    in one COPY; returns the rows staged."""
    connection.execute(
        f"""CREATE UNLOGGED TABLE {quoted(table)} (
                   user_id integer PRIMARY KEY,
                   rank text NOT NULL,
                   is_active boolean NOT NULL,
                   full_volume numeric(15, 2) NOT NULL,
                   personal_volume_total numeric(12, 2) NOT NULL,
                   mlm_volumes jsonb NOT NULL,
                   mlm_status jsonb NOT NULL,
                   total_volume jsonb NOT NULL,
                   rank_rose boolean NOT NULL,
                   fingerprint bigint NOT NULL)"""
    )
    staged = copy_frames(connection, table, STAGED_COLUMNS, (staged_rows(batch) for batch in batches))
    # Statistics of the join key only: the planner needs the row count and user_id's, and
    # sampling the JSON documents for statistics nobody uses cost half a second per 200k users.
    connection.execute(f"ANALYZE {quoted(table)} (user_id)")
    return staged


def lock_users_to_write(connection: psycopg.Connection, table: str) -> int:
    """Lock the users whose owned values differ, keeping their prior values in ``before_table``.

    From here until commit nobody else can change those rows, so what validation compares
    against is exactly what the UPDATE replaced.
    """
    before = quoted(before_table(table))
    locked = connection.execute(
        f"""CREATE UNLOGGED TABLE {before} AS
            SELECT u."userID" AS user_id, u."rank" AS rank, u."isActive" AS is_active,
                   u."fullVolume" AS full_volume, u."personalVolumeTotal" AS personal_volume_total,
                   u."mlmStatus"::jsonb AS mlm_status, u."mlmVolumes"::jsonb AS mlm_volumes,
                   u."totalVolume"::jsonb AS total_volume, {untouched_digest(connection)} AS untouched
            FROM users AS u JOIN {quoted(table)} AS s ON u."userID" = s.user_id
            WHERE {DIFFERS}
            FOR NO KEY UPDATE OF u"""
    ).rowcount
    connection.execute(f"ALTER TABLE {before} ADD PRIMARY KEY (user_id)")
    connection.execute(f"ANALYZE {before} (user_id)")
    return locked


def drop_before(connection: psycopg.Connection, table: str) -> None:
    """Drop ``before_table`` at the end of the write transaction (validation is done with it)."""
    connection.execute(f"DROP TABLE {quoted(before_table(table))}")


def create_written_table(connection: psycopg.Connection, table: str) -> None:
    """``written_table(table)``: user_id and the row version its write gave the row."""
    connection.execute(f"CREATE UNLOGGED TABLE {quoted(written_table(table))} (user_id integer PRIMARY KEY, row_version bigint NOT NULL)")


def merge_documents(connection: psycopg.Connection, table: str) -> int:
    """Write the locked users: owned keys replaced, every other key kept; returns how many.

    The written users and their new row versions go into ``written_table(table)`` (created by
    ``create_written_table``) from the UPDATE's own RETURNING, so nothing has to find them again.
    """
    types = json_column_types(connection)
    status, volumes, total = (types[c] for c in JSON_COLUMNS)
    written = quoted(written_table(table))
    count = connection.execute(
        f"""WITH merged AS (
                UPDATE users AS u SET
                    "rank" = s.rank,
                    "isActive" = s.is_active,
                    "fullVolume" = s.full_volume,
                    "teamVolumeTotal" = s.full_volume,
                    "personalVolumeTotal" = s.personal_volume_total,
                    "mlmStatus" = ({WRITTEN_STATUS})::{status},
                    "mlmVolumes" = ({WRITTEN_VOLUMES})::{volumes},
                    "totalVolume" = s.total_volume::{total}
                FROM {quoted(table)} AS s JOIN {quoted(before_table(table))} AS b ON b.user_id = s.user_id
                WHERE u."userID" = s.user_id
                RETURNING u."userID", {ROW_VERSION})
            INSERT INTO {written} SELECT * FROM merged"""
    ).rowcount
    connection.execute(f"ANALYZE {written}")
    return count


def write_rank_history(connection: psycopg.Connection, recomputed: Recomputed, run_id: int) -> int:
    """One ``rank_history`` row (natural qualification) per user whose rank rose in this run."""
    changes = cents_as_decimal_text(recomputed.rank_changes, ["team_volume_cents"])
    connection.execute(
        """CREATE TEMP TABLE mlm_rank_changes (
               user_id integer, previous_rank text, new_rank text, team_volume_cents numeric(15, 2), active_partners integer
           ) ON COMMIT DROP"""
    )
    copy_frame(connection, "mlm_rank_changes", changes)
    return connection.execute(
        """INSERT INTO rank_history ("createdAt", "userID", "previousRank", "newRank", "teamVolume",
                                     "activePartners", "qualificationMethod", "notes")
           SELECT now() AT TIME ZONE 'utc', c.user_id, c.previous_rank, c.new_rank, c.team_volume_cents,
                  c.active_partners, 'natural', 'mlm-recompute run ' || %s
           FROM mlm_rank_changes AS c""",
        [run_id],
    ).rowcount


SNAPSHOT_MONEY = ["personal_volume_total_cents", "monthly_pv_cents", "full_volume_cents", "qualifying_volume_cents"]


def snapshot_values(recomputed: Recomputed, *, is_final: bool) -> pl.DataFrame:
    """The period's snapshot values (money in cents) with the fingerprint of those values (not
    of the run that writes them); one row per user."""
    values = recomputed.snapshots.with_columns(is_final=pl.lit(is_final))
    return values.with_columns(fingerprint=fingerprint(*values.columns))


def snapshot_text(values: pl.DataFrame, recomputed: Recomputed, run_id: int) -> pl.DataFrame:
    """``snapshot_values`` rows as ``mlm_period_snapshots`` columns, money as exact decimal text."""
    rows = cents_as_decimal_text(values, SNAPSHOT_MONEY)
    return rows.rename({c: c.removesuffix("_cents") for c in SNAPSHOT_MONEY}).with_columns(
        period=pl.lit(recomputed.period),
        run_id=pl.lit(run_id),
        as_of=pl.lit(recomputed.as_of.isoformat()),
    )


def snapshot_rows(recomputed: Recomputed, run_id: int, *, is_final: bool) -> pl.DataFrame:
    """The period's snapshot rows as ``mlm_period_snapshots`` columns; one row per user."""
    return snapshot_text(snapshot_values(recomputed, is_final=is_final), recomputed, run_id)


STORED_SNAPSHOT_FINGERPRINTS = {"user_id": pl.Int64, "fingerprint": pl.Int64}
SNAPSHOT_KEY = ("period", "user_id")  # mlm_period_snapshots' primary key


def stored_snapshot_fingerprints(connection: psycopg.Connection, period: str) -> pl.DataFrame | None:
    """The (user_id, fingerprint) of ``period``'s stored snapshot rows where the fingerprint is
    not null (a row stored before fingerprints existed has none), COPYed out as CSV and read by
    Polars; None when the period has no row stored at all."""
    (count,) = connection.execute("SELECT count(*) FROM mlm_period_snapshots WHERE period = %s", [period]).fetchone()
    if not count:
        return None
    buffer = io.BytesIO()
    with connection.cursor().copy(
        sql.SQL("COPY (SELECT user_id, fingerprint FROM mlm_period_snapshots WHERE period = {} AND fingerprint IS NOT NULL) TO STDOUT (FORMAT csv)").format(
            sql.Literal(period)
        )
    ) as copy:
        for chunk in copy:
            buffer.write(chunk)
    if not buffer.tell():
        return pl.DataFrame(schema=STORED_SNAPSHOT_FINGERPRINTS)
    buffer.seek(0)
    return pl.read_csv(buffer, has_header=False, schema=STORED_SNAPSHOT_FINGERPRINTS)


def changed_snapshot_values(values: pl.DataFrame, stored: pl.DataFrame) -> pl.DataFrame:
    """The ``values`` whose fingerprint differs from the stored row's (or that have none stored)."""
    return values.join(stored, on=["user_id", "fingerprint"], how="anti")


def write_snapshots(connection: psycopg.Connection, recomputed: Recomputed, run_id: int, *, is_final: bool) -> int:
    """Upsert the period's snapshot rows, sending only those whose values changed. The period's
    stored fingerprints are read first, on this connection, and compared in the frame, so only
    the changed or missing rows are COPYed; each of them differs from its stored row at least in
    the fingerprint (a row stored before fingerprints existed has none), so each is upserted. A
    period with no rows yet (its first run) has nothing to compare or conflict with: its rows
    are COPYed straight in. Runs of one period never overlap (the run lock), so no row can
    appear or change between the read and the COPY."""
    stored = stored_snapshot_fingerprints(connection, recomputed.period)
    if stored is None:
        rows = snapshot_rows(recomputed, run_id, is_final=is_final)
        copy_frame(connection, "mlm_period_snapshots", rows)
        return rows.height
    changed = changed_snapshot_values(snapshot_values(recomputed, is_final=is_final), stored)
    if not changed.height:
        return 0
    rows = snapshot_text(changed, recomputed, run_id)
    connection.execute("CREATE TEMP TABLE mlm_snapshot_rows (LIKE mlm_period_snapshots) ON COMMIT DROP")
    copy_frame(connection, "mlm_snapshot_rows", rows)
    values = [c for c in rows.columns if c not in SNAPSHOT_KEY]
    upserted = connection.execute(
        f"""INSERT INTO mlm_period_snapshots ({", ".join(rows.columns)})
            SELECT {", ".join(rows.columns)} FROM mlm_snapshot_rows
            ON CONFLICT ({", ".join(SNAPSHOT_KEY)}) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in values)}"""
    ).rowcount
    # A backfill writes several periods in one transaction: leave no scratch table behind.
    connection.execute("DROP TABLE mlm_snapshot_rows")
    return upserted


def drop_staging(connection: psycopg.Connection, table: str) -> None:
    connection.execute(f"DROP TABLE IF EXISTS {quoted(table)}, {quoted(written_table(table))}")


def drop_abandoned_staging(connection: psycopg.Connection) -> list[str]:
    """Drop staging tables left by runs that died after committing (the run lock is held, so no
    other run is using one)."""
    names = [
        row[0]
        for row in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename ~ '^mlm_staging_[0-9]+$'"
        ).fetchall()
    ]
    for name in names:
        drop_staging(connection, name)
    return names

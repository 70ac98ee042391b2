"""The audit's numbers: how the stored JSON documents deviate from their documented structure,
and how far what is stored is from what the sources say. Read-only.

Everything read here is read inside one REPEATABLE READ, READ ONLY transaction (PostgreSQL
itself refuses any write in it, temporary tables included). The drift's recomputed side comes
from the project's own dry run (``flows.pipeline.run_period(dry_run=True)``), which rolls back.

Structure is checked in SQL, in one pass over ``users`` for all six JSON columns (each parsed
once per user through ``::jsonb``, so ``json`` and ``jsonb`` columns behave the same; one pass
rather than one per column because telling which documents the recompute wrote needs the
``totalVolume`` of every user, the largest document). Each user's documents get an array of
findings (column, section, kind, key, found type, expected, value) and the pass aggregates them.
Deviation kinds:

* ``missing_key``: a key the recompute always writes is absent; only checked for documents the
  recompute wrote (the user's ``totalVolume`` has ``calculatedAt`` or ``asOf``);
* ``wrong_type``: the key holds another JSON type than documented;
* ``out_of_domain``: the right type, a value outside the domain (a rank the plan does not have, a
  month that is not ``YYYY-MM``, a time that is not ISO, a pioneer number outside 1..slots);
* ``unknown_key``: a key not documented. Listed for every document; a deviation only for
  ``totalVolume``, which the recompute owns whole (``mlmStatus``/``mlmVolumes`` keep others' keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import polars as pl

from db.connection import Database
from db.extract import helper_in_snapshot, snapshot
from transforms.plan import Plan

EXAMPLES = 5  # example userIDs kept per finding
TOP_DEVIATIONS = 20  # deviations listed per column, most common first
VALUE_CHARS = 60  # an example value is cut to this many characters

# The documents' keys, and when a key is required: always written by the recompute ("written"),
# written for pioneers ("pioneer"), or optional (None).
WRITTEN, PIONEER = "written", "pioneer"


@dataclass(frozen=True)
class Rule:
    """What a documented key may hold: its JSON types, and a domain over its value.

    ``domain`` is SQL in which ``{text}`` stands for the value as text (``->>``) and ``{json}``
    for it as JSON (``->``).
    """

    types: tuple[str, ...]
    expected: str
    domain: str | None = None


_MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_ISO_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"


def rules(plan: Plan) -> dict[str, Rule]:
    """The value rules by name; rank names and pioneer slots come from the plan."""
    # Plan rank names are validated identifiers (^[a-z][a-z0-9_]*$), safe as SQL literals.
    ranks = "ARRAY[" + ", ".join(f"'{name}'" for name in plan.rank_names) + "]::text[]"
    return {
        "money_text": Rule(("string",), "decimal string with two places", r"{text} ~ '^-?[0-9]+\.[0-9]{2}$'"),
        "number": Rule(("number",), "number"),
        "integer": Rule(("number",), "integer", "{text} ~ '^-?[0-9]+$'"),
        "month": Rule(("string",), "YYYY-MM", "{text} ~ '" + _MONTH + "'"),
        "month_or_null": Rule(("string", "null"), "YYYY-MM or null", "{text} ~ '" + _MONTH + "'"),
        "iso_time": Rule(("string",), "ISO time", "{text} ~ '" + _ISO_TIME + "'"),
        "boolean": Rule(("boolean",), "boolean"),
        "object": Rule(("object",), "object"),
        "string": Rule(("string",), "string"),
        "rank": Rule(("string",), f"a rank of plan {plan.version}", f"{{text}} = ANY({ranks})"),
        "pioneer_number": Rule(
            ("number",),
            f"integer 1..{plan.pioneer_slots}",
            f"CASE WHEN {{text}} ~ '^[0-9]+$' THEN {{text}}::numeric BETWEEN 1 AND {plan.pioneer_slots} ELSE false END",
        ),
        "objects": Rule(("array",), "array of objects", """NOT jsonb_path_exists({json}, '$[*] ? (@.type() != "object")')"""),
    }


@dataclass(frozen=True)
class Document:
    """A JSON column's documented structure: key -> (rule name, when required); ``keys`` empty
    means any keys (only key/type frequencies are reported)."""

    column: str
    keys: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    owned_whole: bool = False

    @property
    def documented(self) -> bool:
        return bool(self.keys)


DOCUMENTS = (
    Document(
        "mlmVolumes",
        {
            "monthlyPV": ("money_text", WRITTEN),
            "personalTotal": ("number", WRITTEN),
            "graceDayStreak": ("integer", None),
            "lastGraceDayMonth": ("month", None),
            "autoship": ("object", None),
        },
    ),
    Document(
        "mlmStatus",
        {
            "lastActiveMonth": ("month_or_null", WRITTEN),
            "rankQualifiedAt": ("iso_time", None),
            "hasPioneerBonus": ("boolean", None),
            "pioneerGrantedAt": ("iso_time", PIONEER),
            "pioneerPurchaseId": ("integer", PIONEER),
            "pioneerNumber": ("pioneer_number", PIONEER),
            "pioneerPurchasesCount": ("integer", None),
            "assignedRank": ("rank", None),
            "assignedBy": ("integer", None),
            "assignedAt": ("iso_time", None),
            "isFounder": ("boolean", None),
            "founderGrantedAt": ("iso_time", None),
            "founderGrantedBy": ("integer", None),
        },
    ),
    Document(
        "totalVolume",
        {
            **{k: ("number", WRITTEN) for k in ("qualifyingVolume", "fullVolume", "requiredForNextRank", "gap", "capLimit")},
            "nextRank": ("rank", WRITTEN),
            "currentRank": ("rank", WRITTEN),
            "branches": ("objects", WRITTEN),
            "calculatedAt": ("iso_time", WRITTEN),
            "runId": ("integer", WRITTEN),
            "planVersion": ("string", WRITTEN),
            "asOf": ("iso_time", WRITTEN),
        },
        owned_whole=True,
    ),
    Document("personalData"),
    Document("emailVerification"),
    Document("settings"),
)

_SEP = "chr(31)"  # joins a finding's parts: a control character that no key or value text holds
_PARTS = ("column", "section", "kind", "key", "found", "expected", "value")


def _literal(text: str) -> str:
    """``text`` as a SQL string literal (quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def _text_array(values) -> str:
    return "ARRAY[" + ", ".join(_literal(v) for v in values) + "]::text[]"


def _finding(column: str, section: str, kind: str = "NULL", key: str = "NULL", found: str = "NULL", expected: str = "NULL", value: str = "NULL") -> str:
    """SQL text of one finding: its _PARTS (SQL expressions) joined by the separator; ``concat``
    turns a NULL part into an empty one, so every part keeps its position."""
    return "concat(" + f", {_SEP}, ".join([_literal(column), _literal(section), kind, key, found, expected, value]) + ")"


def _key_check(document: Document, doc: str, key: str, rule: Rule, required: str | None) -> str:
    """SQL: the deviation of one key of the object ``doc``, or NULL when the key conforms."""
    json, text = f"({doc} -> {_literal(key)})", f"({doc} ->> {_literal(key)})"
    found, value = f"jsonb_typeof({json})", f"left({json}::text, {VALUE_CHARS})"
    needed = {WRITTEN: "w.written", PIONEER: f"w.written AND {doc} -> 'hasPioneerBonus' = 'true'::jsonb", None: "false"}[required]
    name, expected = _literal(key), _literal(rule.expected)

    def deviation(kind: str, found: str = "NULL", value: str = "NULL") -> str:
        return _finding(document.column, "deviation", _literal(kind), name, found, expected, value)

    checks = f"""CASE WHEN NOT {doc} ? {name} THEN CASE WHEN {needed} THEN {deviation("missing_key")} END
                 WHEN {found} <> ALL ({_text_array(rule.types)}) THEN {deviation("wrong_type", found, value)}"""
    if rule.domain:
        domain = rule.domain.replace("{text}", text).replace("{json}", json)
        checks += f"""
                 WHEN {found} <> 'null' AND NOT COALESCE({domain}, false) THEN {deviation("out_of_domain", found, value)}"""
    return checks + " END"


def _deviations_sql(document: Document, doc: str, plan: Plan) -> str:
    """SQL: the deviations of the object ``doc`` (an empty array when it conforms)."""
    if not document.documented:
        return "ARRAY[]::text[]"
    known = rules(plan)
    checks = ",\n                 ".join(_key_check(document, doc, key, known[rule], required) for key, (rule, required) in document.keys.items())
    deviations = f"array_remove(ARRAY[{checks}], NULL)"
    if not document.owned_whole:
        return deviations
    # A document the recompute owns whole has no room for anyone else's keys.
    unknown = _finding(
        document.column, "deviation", "'unknown_key'", "k", f"jsonb_typeof({doc} -> k)", "'no such key'", f"left(({doc} -> k)::text, {VALUE_CHARS})"
    )
    return f"{deviations} || ARRAY(SELECT {unknown} FROM jsonb_object_keys({doc} - {_text_array(document.keys)}) AS k)"


def _keys_sql(document: Document, doc: str) -> str:
    """SQL: the object ``doc``'s keys as findings: the undocumented ones of a documented column,
    every key with its JSON type for a free one."""
    if document.owned_whole:
        return "ARRAY[]::text[]"  # its unknown keys are deviations already (see _deviations_sql)
    if document.documented:
        unknown = _finding(document.column, "unknown_key", key="k")
        return f"ARRAY(SELECT {unknown} FROM jsonb_object_keys({doc} - {_text_array(document.keys)}) AS k)"
    key_type = _finding(document.column, "key_type", key="e.key", found="jsonb_typeof(e.value)")
    return f"ARRAY(SELECT {key_type} FROM jsonb_each({doc}) AS e)"


def _checked_columns(document: Document, i: int, plan: Plan) -> str:
    """SQL select-list items for one JSON column (alias ``d<i>``): its type, its deviations, its other findings."""
    doc = f"d{i}.doc"
    shape = _finding(document.column, "non_object", kind=f"jsonb_typeof({doc})", value=f"left({doc}::text, {VALUE_CHARS})")
    return f"""COALESCE(jsonb_typeof({doc}), 'sql null') AS t{i},
           CASE WHEN jsonb_typeof({doc}) = 'object' THEN {_deviations_sql(document, doc, plan)} ELSE ARRAY[]::text[] END AS v{i},
           CASE WHEN jsonb_typeof({doc}) = 'object' THEN {_keys_sql(document, doc)}
                WHEN {doc} IS NOT NULL THEN ARRAY[{shape}] ELSE ARRAY[]::text[] END AS k{i}"""


def _counts_sql(i: int) -> str:
    return f"""count(*) FILTER (WHERE t{i} = 'sql null'), count(*) FILTER (WHERE t{i} = 'object'),
               count(*) FILTER (WHERE t{i} = 'object' AND cardinality(v{i}) = 0), count(*) FILTER (WHERE t{i} = 'object' AND written)"""


COUNTS = ("null", "objects", "compliant", "written")


def structure_sql(plan: Plan, part: str = "true") -> str:
    """One pass over ``users`` checking every JSON column: one row of counts (COUNTS for each
    column in DOCUMENTS order), then one row per finding (column, section, kind, key, found,
    expected) with its users, example userIDs and their values."""
    total_volume = next(i for i, d in enumerate(DOCUMENTS) if d.column == "totalVolume")
    # OFFSET 0 keeps the planner from inlining a subquery, which would parse the JSON again at
    # every reference instead of once per user.
    parsed = ",\n         ".join(f'LATERAL (SELECT u."{d.column}"::jsonb AS doc OFFSET 0) AS d{i}' for i, d in enumerate(DOCUMENTS))
    findings = " || ".join(f"v{i} || k{i}" for i in range(len(DOCUMENTS)))
    counts = ",\n               ".join(_counts_sql(i) for i in range(len(DOCUMENTS)))
    parts = ", ".join(f"split_part(x, {_SEP}, {n})" for n in range(1, len(_PARTS)))
    return f"""
WITH checked AS MATERIALIZED (
    SELECT u."userID" AS user_id,
           w.written,
           {", ".join(_checked_columns(d, i, plan) for i, d in enumerate(DOCUMENTS))}
    FROM users AS u,
         {parsed},
         -- A user's documents count as written by the recompute when its totalVolume carries
         -- the run's time stamps (calculatedAt or asOf).
         LATERAL (SELECT COALESCE(jsonb_typeof(d{total_volume}.doc) = 'object' AND d{total_volume}.doc ?| ARRAY['calculatedAt', 'asOf'], false)
                  AS written OFFSET 0) AS w
    WHERE {part}
)
SELECT NULL AS column, 'counts' AS section, NULL AS kind, NULL AS key, NULL AS found, NULL AS expected,
       NULL::bigint AS users, NULL::int[] AS example_user_ids, NULL::text[] AS example_values,
       ARRAY[{counts}] AS counts
FROM checked
UNION ALL
SELECT {parts}, count(*), (array_agg(user_id ORDER BY user_id))[1:{EXAMPLES}],
       (array_agg(split_part(x, {_SEP}, {len(_PARTS)}) ORDER BY user_id))[1:{EXAMPLES}], NULL
FROM checked, unnest({findings}) AS x
GROUP BY 1, 2, 3, 4, 5, 6
"""


def structure_findings(cursor, plan: Plan, part: str = "true") -> pl.DataFrame:
    """Every structure finding of every JSON column, from one pass over ``users`` (those ``part``
    chooses): one row per (column, section, kind, key, found, expected), and one row of counts
    (section ``counts``)."""
    cursor.execute(structure_sql(plan, part))
    return pl.from_arrow(cursor.fetch_arrow_table())


FINDING_KEYS = ["column", "section", "kind", "key", "found", "expected"]


def merged_findings(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Findings of disjoint sets of users as one: counts added, users added, examples the first
    EXAMPLES userIDs of all parts (with their values)."""
    every = pl.concat(parts)
    counts = every.filter(pl.col("section") == "counts")
    summed = [sum(values) for values in zip(*(row.to_list() for row in counts["counts"]))]
    found = every.filter(pl.col("section") != "counts")
    users = found.group_by(FINDING_KEYS).agg(pl.col("users").sum())
    examples = (
        found.select(*FINDING_KEYS, "example_user_ids", "example_values")
        .explode(["example_user_ids", "example_values"])
        .sort("example_user_ids")
        .group_by(FINDING_KEYS)
        .agg(pl.col("example_user_ids").head(EXAMPLES), pl.col("example_values").head(EXAMPLES))
    )
    rows = users.join(examples, on=FINDING_KEYS, how="left", nulls_equal=True).with_columns(counts=pl.lit(None, dtype=counts.schema["counts"]))
    head = counts.head(1).with_columns(counts=pl.Series([summed], dtype=counts.schema["counts"]))
    return pl.concat([head, rows.select(head.columns).cast(head.schema)])


def structure_compliance(findings: pl.DataFrame) -> dict[str, dict]:
    """Each JSON column's compliance report, by column name (DOCUMENTS order)."""
    counts = findings.filter(pl.col("section") == "counts")["counts"][0].to_list()
    rows = findings.filter(pl.col("section") != "counts").with_columns(
        pl.col("kind", "key", "found", "expected").replace("", None),
        pl.col("example_values").list.eval(pl.element().replace("", None)),
    )
    return {
        document.column: _column_compliance(
            document, dict(zip(COUNTS, counts[i * len(COUNTS) : (i + 1) * len(COUNTS)])), rows.filter(pl.col("column") == document.column)
        )
        for i, document in enumerate(DOCUMENTS)
    }


def _rows(findings: pl.DataFrame, section: str) -> list[dict]:
    """One section's findings, most users first, then by key and kind."""
    chosen = findings.filter(pl.col("section") == section)
    return chosen.sort(["users", "key", "kind", "found"], descending=[True, False, False, False], nulls_last=True).to_dicts()


def _column_compliance(document: Document, counts: dict[str, int], findings: pl.DataFrame) -> dict:
    """One column's report: NULL, non-object and compliant counts, deviations, keys."""
    shapes = [{"type": r["kind"], "users": r["users"], "example_user_ids": r["example_user_ids"]} for r in _rows(findings, "non_object")]
    users = counts["null"] + counts["objects"] + sum(s["users"] for s in shapes)
    compliant = counts["compliant"]
    report = {
        "users": users,
        "null": counts["null"],
        "non_object": shapes,
        "objects": counts["objects"],
        "compliant": compliant,
        "compliant_share": round(compliant / users, 4) if users else None,
        "compliant_share_of_objects": round(compliant / counts["objects"], 4) if counts["objects"] else None,
    }
    if not document.documented:
        return report | {"key_types": [{"key": r["key"], "type": r["found"], "users": r["users"]} for r in _rows(findings, "key_type")]}
    deviations = _rows(findings, "deviation")
    return report | {
        "written_by_recompute": counts["written"],
        "deviating": counts["objects"] - compliant,
        "deviation_kinds": _deviation_kinds(deviations),
        "deviations": [_deviation(r) for r in deviations[:TOP_DEVIATIONS]],
        "deviations_not_listed": max(0, len(deviations) - TOP_DEVIATIONS),
        "unknown_keys": [{"key": r["key"], "users": r["users"], "example_user_ids": r["example_user_ids"]} for r in _unknown_keys(findings)],
    }


def _unknown_keys(findings: pl.DataFrame) -> list[dict]:
    """The undocumented keys found: listed apart, or (a document owned whole) among the deviations."""
    listed = _rows(findings, "unknown_key")
    return listed or [r for r in _rows(findings, "deviation") if r["kind"] == "unknown_key"]


def _deviation_kinds(deviations: list[dict]) -> dict[str, int]:
    """Findings per deviation kind (a user with two wrong keys counts twice)."""
    kinds: dict[str, int] = {}
    for row in deviations:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + row["users"]
    return kinds


_DEVIATION_FIELDS = ("kind", "key", "found", "expected", "users", "example_user_ids", "example_values")


def _deviation(row: dict) -> dict:
    """One deviation as the report lists it."""
    return {name: row[name] for name in _DEVIATION_FIELDS}


# --- persistence drift ------------------------------------------------------------------------

# A stored money value in cents, when it is a plain decimal (as text or number); NULL otherwise.
_CENTS = """CASE WHEN jsonb_typeof({json}) IN ('string', 'number') AND ({text}) ~ '^-?[0-9]+(\\.[0-9]+)?$'
                 THEN round(({text})::numeric * 100)::bigint END"""

STORED_SQL = f"""
SELECT u."userID"::bigint AS user_id,
       u."rank"::text AS rank,
       (u."fullVolume" * 100)::bigint AS full_volume_cents,
       (u."personalVolumeTotal" * 100)::bigint AS personal_volume_total_cents,
       {_CENTS.format(json="v.doc -> 'monthlyPV'", text="v.doc ->> 'monthlyPV'")} AS monthly_pv_cents,
       {_CENTS.format(json="v.doc -> 'personalTotal'", text="v.doc ->> 'personalTotal'")} AS personal_total_cents,
       COALESCE(jsonb_typeof(s.doc) = 'object' AND s.doc -> 'hasPioneerBonus' = 'true'::jsonb, false) AS has_pioneer_bonus,
       u."mlmStatus" IS NULL AS mlm_status_is_null,
       u."mlmVolumes" IS NULL AS mlm_volumes_is_null,
       u."totalVolume" IS NULL AS total_volume_is_null
FROM users AS u,
     LATERAL (SELECT u."mlmVolumes"::jsonb AS doc OFFSET 0) AS v,  -- parsed once per user (see structure_sql)
     LATERAL (SELECT u."mlmStatus"::jsonb AS doc OFFSET 0) AS s
WHERE {{part}}
"""

STORED_COLUMNS = {
    "user_id": pl.Int64,
    "rank": pl.String,
    "full_volume_cents": pl.Int64,
    "personal_volume_total_cents": pl.Int64,
    "monthly_pv_cents": pl.Int64,
    "personal_total_cents": pl.Int64,
    "has_pioneer_bonus": pl.Boolean,
    "mlm_status_is_null": pl.Boolean,
    "mlm_volumes_is_null": pl.Boolean,
    "total_volume_is_null": pl.Boolean,
}

# Money compared: the stored column (or document key) -> the recomputed value it should hold.
MONEY = {
    "fullVolume": ("full_volume_cents", "full_volume_cents"),
    "personalVolumeTotal": ("personal_volume_total_cents", "personal_volume_total_cents"),
    "monthlyPV": ("monthly_pv_cents", "monthly_pv_cents"),
    "personalTotal": ("personal_total_cents", "personal_volume_total_cents"),
}
NULL_DOCUMENTS = {"mlmStatus": "mlm_status_is_null", "mlmVolumes": "mlm_volumes_is_null", "totalVolume": "total_volume_is_null"}

# Buckets of |stored fullVolume - recomputed|, as lower bounds in cents: exact, under a dollar,
# then decades of dollars (the spread runs from rounding to whole lost downlines).
DRIFT_BUCKETS = (
    ("0", 0),
    ("<1", 1),
    ("1-100", 100),
    ("100-1K", 10_000),
    ("1K-10K", 100_000),
    ("10K-100K", 1_000_000),
    ("100K-1M", 10_000_000),
    (">=1M", 100_000_000),
)


def stored_values(cursor, part: str = "true") -> pl.DataFrame:
    """What is stored, as the drift compares it: one row per user (STORED_COLUMNS; those ``part``
    chooses), money in cents."""
    cursor.execute(STORED_SQL.replace("{part}", part))
    return pl.from_arrow(cursor.fetch_arrow_table()).cast(STORED_COLUMNS)


@dataclass(frozen=True)
class Stored:
    """What is stored, read in one snapshot: ``findings`` (structure_findings) and ``values``
    (stored_values, one row per user)."""

    findings: pl.DataFrame
    values: pl.DataFrame


EVEN, ODD = 'u."userID" % 2 = 0', 'u."userID" % 2 = 1'


def _odd_half(cursor, plan: Plan) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The odd userIDs' findings and stored values (on the helper connection)."""
    return structure_findings(cursor, plan, ODD), stored_values(cursor, ODD)


def stored_snapshot(db: Database, plan: Plan) -> Stored:
    """The structure findings and the stored values, all from one snapshot (REPEATABLE READ).

    Parsing six documents per user is the audit's largest cost (measured ~60 s at 1M users), and
    PostgreSQL runs one statement on one core: the even and odd userIDs are checked on two
    connections that share the snapshot, and their findings merged; so are the stored values.
    """
    with snapshot(db) as cursor, helper_in_snapshot(db, cursor) as helper:
        odd = helper.submit(_odd_half, plan)
        even_findings, even_values = structure_findings(cursor, plan, EVEN), stored_values(cursor, EVEN)
        odd_findings, odd_values = odd.result()
    return Stored(findings=merged_findings([even_findings, odd_findings]), values=pl.concat([even_values, odd_values]).sort("user_id"))


def compared_users(stored: pl.DataFrame, recomputed: pl.DataFrame) -> pl.DataFrame:
    """Stored next to recomputed, for every user the recompute computed: one row per user;
    recomputed columns are suffixed ``_new``."""
    new = recomputed.select(
        "user_id",
        pl.col("rank").alias("rank_new"),
        pl.col("full_volume_cents").alias("full_volume_cents_new"),
        pl.col("personal_volume_total_cents").alias("personal_volume_total_cents_new"),
        pl.col("monthly_pv_cents").alias("monthly_pv_cents_new"),
        pl.col("pioneer_number").is_not_null().alias("is_pioneer_new"),
    )
    return stored.join(new, on="user_id", how="inner")


def usd(cents: int) -> str:
    """Integer cents as exact decimal text with two places (``-125050`` -> ``"-1250.50"``)."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{rest:02d}"


def rank_crosstab(compared: pl.DataFrame, plan: Plan) -> dict:
    """Stored rank by recomputed rank: users per pair (all pairs, ranks in plan order, names the
    plan does not have last), and the differing pairs with examples."""
    pairs = (
        compared.group_by(pl.col("rank").alias("stored"), pl.col("rank_new").alias("recomputed"))
        .agg(pl.len().alias("users"), pl.col("user_id").sort().head(EXAMPLES).alias("example_user_ids"))
        .sort(["users", "stored", "recomputed"], descending=[True, False, False], nulls_last=True)
    )
    differing = pairs.filter(pl.col("stored").ne_missing(pl.col("recomputed")))
    order = {name: i for i, name in enumerate(plan.rank_names)}
    ordered = pairs.sort(
        pl.col("stored").replace_strict(order, default=len(order), return_dtype=pl.Int32),
        pl.col("recomputed").replace_strict(order, default=len(order), return_dtype=pl.Int32),
        "stored",
        nulls_last=True,
    )
    crosstab: dict[str, dict[str, int]] = {}
    for row in ordered.select("stored", "recomputed", "users").to_dicts():  # one row per rank pair, not per user
        crosstab.setdefault(str(row["stored"]), {})[row["recomputed"]] = row["users"]
    found = set(pairs["stored"].drop_nulls()) | set(pairs["recomputed"].drop_nulls())
    names = plan.rank_names + sorted(found - set(plan.rank_names))
    return {"users_differing": int(differing["users"].sum()), "differing": differing.to_dicts(), "crosstab": crosstab, "rank_names": names}


def pioneer_drift(compared: pl.DataFrame) -> dict:
    """Recomputed pioneers against stored ``hasPioneerBonus``: the userIDs missing and extra."""
    missing = compared.filter(pl.col("is_pioneer_new") & ~pl.col("has_pioneer_bonus"))["user_id"].sort()
    extra = compared.filter(~pl.col("is_pioneer_new") & pl.col("has_pioneer_bonus"))["user_id"].sort()
    return {
        "recomputed": int(compared["is_pioneer_new"].sum()),
        "stored": int(compared["has_pioneer_bonus"].sum()),
        "missing": missing.len(),
        "missing_user_ids": missing.to_list(),
        "extra": extra.len(),
        "extra_user_ids": extra.to_list(),
    }


def null_documents(compared: pl.DataFrame) -> dict[str, dict]:
    """Per JSON column, the computed users whose stored document is NULL (the recompute writes one for each)."""
    counts = compared.select(
        *(pl.col(flag).sum().alias(name) for name, flag in NULL_DOCUMENTS.items()),
        *(pl.col("user_id").filter(flag).sort().head(EXAMPLES).implode().alias(f"{name} examples") for name, flag in NULL_DOCUMENTS.items()),
    ).row(0, named=True)
    return {name: {"users": int(counts[name]), "example_user_ids": counts[f"{name} examples"]} for name in NULL_DOCUMENTS}


def money_drift(compared: pl.DataFrame) -> dict[str, dict]:
    """Per money column, stored against recomputed: users differing (a missing stored value counts
    as 0), users with no stored value, total, net and largest absolute difference (exact text)."""
    return {name: _money_difference(compared, stored, new) for name, (stored, new) in MONEY.items()}


def _money_difference(compared: pl.DataFrame, stored: str, new: str) -> dict:
    difference = pl.col(f"{new}_new") - pl.col(stored).fill_null(0)
    frame = compared.select("user_id", pl.col(stored).is_null().alias("missing"), difference.alias("difference")).with_columns(
        pl.col("difference").abs().alias("absolute")
    )
    totals = frame.select(
        (pl.col("absolute") != 0).sum().alias("differing"),
        pl.col("missing").sum().alias("missing"),
        pl.col("absolute").sum().alias("total"),
        pl.col("difference").sum().alias("net"),
        pl.col("absolute").max().alias("largest"),
        pl.col("user_id").sort_by(["absolute", "user_id"], descending=[True, False]).first().alias("largest_user_id"),
        pl.col("user_id").filter(pl.col("absolute") != 0).sort().head(EXAMPLES).implode().alias("example_user_ids"),
    ).row(0, named=True)
    return {
        "users_differing": int(totals["differing"]),
        "users_missing_value": int(totals["missing"]),
        "total_abs_difference": usd(totals["total"] or 0),
        "net_difference": usd(totals["net"] or 0),
        "largest_abs_difference": usd(totals["largest"] or 0),
        "largest_user_id": totals["largest_user_id"] if totals["largest"] else None,
        "example_user_ids": totals["example_user_ids"],
    }


def full_volume_histogram(compared: pl.DataFrame) -> list[dict]:
    """Users by |stored fullVolume - recomputed|, one row per bucket of DRIFT_BUCKETS (empty ones too)."""
    absolute = (pl.col("full_volume_cents_new") - pl.col("full_volume_cents").fill_null(0)).abs()
    # A bucket's index is how many lower bounds the difference reaches (bounds are ascending).
    bucket = pl.sum_horizontal([(absolute >= bound).cast(pl.Int32) for _, bound in DRIFT_BUCKETS[1:]]).alias("bucket")
    counts = dict(compared.group_by(bucket).len().iter_rows())
    return [{"bucket": label, "from_usd": usd(bound), "users": int(counts.get(i, 0))} for i, (label, bound) in enumerate(DRIFT_BUCKETS)]


def persistence_drift(stored: pl.DataFrame, recomputed: pl.DataFrame, plan: Plan) -> dict:
    """Stored against recomputed for every computed user: ranks, pioneers, NULL documents, money, fullVolume spread."""
    compared = compared_users(stored, recomputed)
    return {
        "users_compared": compared.height,
        "ranks": rank_crosstab(compared, plan),
        "pioneers": pioneer_drift(compared),
        "null_documents": null_documents(compared),
        "money": money_drift(compared),
        "full_volume_histogram": full_volume_histogram(compared),
    }


def as_of_label(as_of: datetime) -> str:
    """The cut-off as it appears in file names: ``20251101T000000Z`` (UTC, no colons)."""
    return as_of.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")

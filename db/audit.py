"""The audit's numbers: how the stored JSON documents deviate from their documented structure,
and how far what is stored is from what the sources say. Read-only.

Everything read here is read inside one REPEATABLE READ, READ ONLY transaction (PostgreSQL
itself refuses any write in it, temporary tables included). The drift's recomputed side comes
from the project's own dry run (``flows.pipeline.run_period(dry_run=True)``), which rolls back.

Structure is checked in SQL against the documented shapes of ``db.document_shapes``, in one pass
over ``users`` for all six JSON columns (each parsed once per user through ``::jsonb``, so
``json`` and ``jsonb`` columns behave the same). Each user's documents get an array of findings
(column, section, kind, key, found type, expected, value) and the pass aggregates them; a
compliant document has none. A finding's ``key`` is its path inside the document: ``kyc.status``,
``branches[].isCapped`` (any element), ``branches[]`` (the element itself). Deviation kinds:

* ``missing_key``: a required key is absent (the pioneer keys: when ``hasPioneerBonus`` is true);
* ``unknown_key``: a key the shape does not declare;
* ``wrong_type``: the key holds another JSON type than documented (``null`` where null is not
  documented, an array element that is not an object);
* ``out_of_domain``: the right type, a value outside the domain (a value not in a documented
  enum, a rank the plan does not have, a month that is not ``YYYY-MM``, a time that is not ISO,
  a fraction where an integer belongs, a pioneer number outside 1..slots).

A document that is not an object (an array, a string, JSON ``null``) and an SQL NULL are counted
apart, never as compliant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

import polars as pl

from db.connection import Database
from db.document_shapes import ALWAYS, PIONEER, SHAPES, Key
from db.extract import COLUMN_TYPES_SQL, ESCAPED_NUL, escaped_nul, helper_in_snapshot, snapshot
from transforms.plan import Plan

EXAMPLES = 5  # example userIDs kept per finding
LISTED = 50  # findings listed per column and kind in the report, most users first
VALUE_CHARS = 60  # an example value is cut to this many characters

KINDS = ("missing_key", "unknown_key", "wrong_type", "out_of_domain")
KIND_LISTS = {"missing_key": "missing_keys", "unknown_key": "unknown_keys", "wrong_type": "wrong_types", "out_of_domain": "out_of_domain"}
# The columns the recompute writes (it never writes the other three).
RECOMPUTED = ("mlmStatus", "mlmVolumes", "totalVolume")


@dataclass(frozen=True)
class Rule:
    """What a value kind may hold: its JSON types, and a domain over its value.

    ``domain`` is SQL in which ``{text}`` stands for the value as text (``->>``) and ``{json}``
    for it as JSON (``->``); it is only evaluated for a value of one of ``types`` other than null.
    """

    types: tuple[str, ...]
    expected: str
    domain: str | None = None


_MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_ISO_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
_MONEY_TEXT = r"^-?[0-9]+\.[0-9]{2}$"
# A whole number (JSON does not tell 5 from 5.0, and neither does the check); numeric, not a
# regex: a regex costs three times as much, and integers are the commonest domain checked.
_WHOLE = "floor(({json})::numeric) = ({json})::numeric"


def _matches(pattern: str) -> str:
    return "{text} ~ " + _literal(pattern)


def rules(plan: Plan) -> dict[str, Rule]:
    """The rule of every value kind of ``db.document_shapes``; rank names and pioneer slots come from the plan."""
    # Plan rank names are validated identifiers (^[a-z][a-z0-9_]*$), safe as SQL literals.
    ranks = _text_array(plan.rank_names)
    return {
        "number": Rule(("number",), "number"),
        "integer": Rule(("number",), "integer", _WHOLE),
        # The documented number, or the decimal string the recompute writes.
        "money": Rule(("number", "string"), "number or decimal string with two places", "jsonb_typeof({json}) = 'number' OR " + _matches(_MONEY_TEXT)),
        "boolean": Rule(("boolean",), "boolean"),
        "string": Rule(("string",), "string"),
        "iso_time": Rule(("string",), "ISO time", _matches(_ISO_TIME)),
        "month": Rule(("string",), "YYYY-MM", _matches(_MONTH)),
        "rank": Rule(("string",), f"a rank of plan {plan.version}", f"{{text}} = ANY({ranks})"),
        "pioneer_number": Rule(("number",), f"integer 1..{plan.pioneer_slots}", f"{_WHOLE} AND ({{json}})::numeric BETWEEN 1 AND {plan.pioneer_slots}"),
        "array": Rule(("array",), "array"),
        "object": Rule(("object",), "object"),
        "objects": Rule(("array",), "array of objects"),  # its elements are checked one by one
    }


def key_rule(key: Key, plan: Plan) -> Rule:
    """The rule one documented key is checked by: its kind's, narrowed to ``one_of``, widened by null."""
    rule = rules(plan)[key.kind]
    if key.one_of:
        rule = Rule(rule.types, "one of " + "|".join(key.one_of), "{text} = ANY(" + _text_array(key.one_of) + ")")
    if key.null:
        rule = Rule(rule.types + ("null",), rule.expected + " or null", rule.domain)
    return rule


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


def _value_text(json: str) -> str:
    """SQL: the start of a JSON value's text, as an example value."""
    return f"left({json}::text, {VALUE_CHARS})"


@dataclass(frozen=True)
class Place:
    """Where an object being checked is: its column, the SQL (jsonb) of the object, and the path
    its keys' paths start with (``""`` at the top of the document, ``"kyc."`` inside kyc)."""

    column: str
    doc: str
    path: str

    def inside(self, name: str, doc: str, suffix: str = ".") -> "Place":
        return Place(self.column, doc, f"{self.path}{name}{suffix}")


def _key_check(place: Place, name: str, key: Key, plan: Plan) -> str:
    """SQL: the deviation of one key of the object at ``place``, or NULL when the key conforms
    (the keys inside it are checked apart, by _nested_findings)."""
    doc, rule = place.doc, key_rule(key, plan)
    json, text = f"({doc} -> {_literal(name)})", f"({doc} ->> {_literal(name)})"
    path, expected = _literal(place.path + name), _literal(rule.expected)
    needed = {ALWAYS: "true", PIONEER: f"{doc} -> 'hasPioneerBonus' = 'true'::jsonb"}.get(key.required, "false")

    def deviation(kind: str, found: str = "NULL", value: str = "NULL") -> str:
        return _finding(place.column, "deviation", _literal(kind), path, found, expected, value)

    in_domain = "NULL"
    if rule.domain:
        domain = rule.domain.replace("{text}", text).replace("{json}", json)
        in_domain = f"CASE WHEN NOT COALESCE({domain}, false) THEN {deviation('out_of_domain', f'jsonb_typeof({json})', _value_text(json))} END"
    # A simple CASE computes the key's type once: a conforming key costs one lookup (and its domain).
    documented = "\n                      ".join(f"WHEN {_literal(t)} THEN {'NULL' if t == 'null' else in_domain}" for t in rule.types)
    absent = {"true": deviation("missing_key"), "false": "NULL"}.get(needed, f"CASE WHEN {needed} THEN {deviation('missing_key')} END")
    return f"""CASE jsonb_typeof({json})
                      {documented}
                      ELSE CASE WHEN {doc} ? {_literal(name)} THEN {deviation("wrong_type", f"jsonb_typeof({json})", _value_text(json))} ELSE {absent} END END"""


def _unknown_keys(place: Place, keys: Mapping[str, Key]) -> str:
    """SQL: an unknown_key finding for each key of the object at ``place`` that ``keys`` does not declare."""
    rest = f"({place.doc} - {_text_array(keys)})"
    unknown = _finding(
        place.column, "deviation", "'unknown_key'", f"{_literal(place.path)} || k", f"jsonb_typeof({place.doc} -> k)", "'no such key'", _value_text(f"({place.doc} -> k)")
    )
    # The subquery runs only where there is an unknown key: most documents have none.
    return f"CASE WHEN {rest} = '{{}}'::jsonb THEN ARRAY[]::text[] ELSE ARRAY(SELECT {unknown} FROM jsonb_object_keys({rest}) AS k) END"


def _element_findings(place: Place, name: str, key: Key, plan: Plan, depth: int) -> str:
    """SQL: the deviations of the elements of the array ``name`` of the object at ``place``, each
    finding once per document (with the first example value), however many elements share it."""
    array, alias = f"({place.doc} -> {_literal(name)})", f"e{depth}"
    element = place.inside(name, f"{alias}.el", "[].")
    not_object = _finding(
        place.column, "deviation", "'wrong_type'", _literal(place.path + name + "[]"), f"jsonb_typeof({alias}.el)", "'object'", _value_text(f"{alias}.el")
    )
    findings = f"CASE WHEN jsonb_typeof({alias}.el) = 'object' THEN {_object_findings(element, key.keys, plan, depth + 1)} ELSE ARRAY[{not_object}] END"
    head = f"left(f{depth}.f, -1 - length(split_part(f{depth}.f, {_SEP}, -1)))"  # the finding without its value
    return f"""CASE WHEN jsonb_typeof({array}) = 'array' AND {array} <> '[]'::jsonb THEN ARRAY(
                   SELECT DISTINCT ON ({head}) f{depth}.f
                   FROM jsonb_array_elements({array}) AS {alias}(el), unnest({findings}) AS f{depth}(f)
                   ORDER BY {head}, f{depth}.f)
                 ELSE ARRAY[]::text[] END"""


def _nested_findings(place: Place, name: str, key: Key, plan: Plan, depth: int) -> str | None:
    """SQL: the deviations inside the key ``name`` (an object, or an array of objects) when it
    holds the documented type; None for a key of any other kind."""
    json = f"({place.doc} -> {_literal(name)})"
    if key.kind == "object":
        inner = _object_findings(place.inside(name, json), key.keys, plan, depth)
        return f"CASE WHEN jsonb_typeof({json}) = 'object' THEN {inner} ELSE ARRAY[]::text[] END"
    if key.kind == "objects":
        return _element_findings(place, name, key, plan, depth)
    return None


def _object_findings(place: Place, keys: Mapping[str, Key], plan: Plan, depth: int = 0) -> str:
    """SQL (text[]): every deviation of the object at ``place`` from ``keys``, nested keys
    included; an empty array when it conforms."""
    checks = ",\n                 ".join(_key_check(place, name, key, plan) for name, key in keys.items())
    nested = [n for n in (_nested_findings(place, name, key, plan, depth) for name, key in keys.items()) if n]
    return "(" + " || ".join([f"array_remove(ARRAY[{checks}], NULL)", *nested, _unknown_keys(place, keys)]) + ")"


def _checked_columns(column: str, i: int, plan: Plan) -> str:
    """SQL select-list items for one JSON column (alias ``d<i>``): its JSON type, its deviations, and its shape when not an object."""
    doc = f"d{i}.doc"
    shape = _finding(column, "non_object", kind=f"jsonb_typeof({doc})", value=_value_text(doc))
    return f"""COALESCE(jsonb_typeof({doc}), 'sql null') AS t{i},
           CASE WHEN jsonb_typeof({doc}) = 'object' THEN {_object_findings(Place(column, doc, ""), SHAPES[column], plan)} ELSE ARRAY[]::text[] END AS v{i},
           CASE WHEN jsonb_typeof({doc}) <> 'object' THEN ARRAY[{shape}] ELSE ARRAY[]::text[] END AS k{i}"""


# A document's state, the low two bits of its code; the bits above say which KINDS it deviates by.
NULL_DOCUMENT, NOT_OBJECT, COMPLIANT, DEVIATING = 0, 1, 2, 3


def _code_sql(i: int) -> str:
    """SQL: column ``i``'s code for one user: its state, plus ``4 << n`` when it has a deviation
    of ``KINDS[n]`` (a finding's parts read ..., deviation, kind, ...)."""
    deviations = f"array_to_string(v{i}, chr(30))"
    kinds = " + ".join(
        f"CASE WHEN strpos({deviations}, 'deviation' || {_SEP} || {_literal(kind)} || {_SEP}) > 0 THEN {4 << n} ELSE 0 END" for n, kind in enumerate(KINDS)
    )
    return f"""CASE WHEN t{i} = 'sql null' THEN {NULL_DOCUMENT} WHEN t{i} <> 'object' THEN {NOT_OBJECT}
                WHEN cardinality(v{i}) = 0 THEN {COMPLIANT} ELSE {DEVIATING} + {kinds} END AS c{i}"""


# Each column's counts: SQL NULL documents, objects, compliant objects, objects of users whose
# documents the recompute wrote, then objects with at least one deviation of each of KINDS.
COUNTS = ("null", "objects", "compliant", "written", *KINDS)


def parsed(column: str, json_columns: frozenset[str]) -> str:
    """SQL: ``u.column`` as jsonb. A ``json`` document holding an escaped NUL, which jsonb
    refuses (and with it the whole audit, naming no user), reads as a JSON string saying so: the
    audit reports it as a document of the wrong type, with its userID."""
    if column not in json_columns:
        return f'u."{column}"::jsonb'
    return f"""CASE WHEN {escaped_nul(f'u."{column}"::text')} THEN to_jsonb('{ESCAPED_NUL}'::text) ELSE u."{column}"::jsonb END"""


def json_columns(cursor) -> frozenset[str]:
    """The columns of ``users`` that are ``json`` (not ``jsonb``) in this database."""
    cursor.execute(COLUMN_TYPES_SQL)
    return frozenset(name for name, kind in cursor.fetchall() if kind == "json")


def structure_sql(plan: Plan, part: str = "true", json_typed: frozenset[str] = frozenset()) -> str:
    """One pass over ``users`` checking every JSON column: rows of section ``codes`` (how many
    users have each combination of column codes, see _code_sql; ``counts`` holds written, then the
    codes in SHAPES order), then one row per finding (column, section, kind, key, found,
    expected) with its users, example userIDs and their values."""
    columns = list(SHAPES)
    total_volume = columns.index("totalVolume")
    # OFFSET 0 keeps the planner from inlining a subquery, which would parse the JSON again at
    # every reference instead of once per user (and, for the checks, check it again).
    documents = ",\n             ".join(f"LATERAL (SELECT {parsed(column, json_typed)} AS doc OFFSET 0) AS d{i}" for i, column in enumerate(columns))
    findings = " || ".join(f"v{i} || k{i}" for i in range(len(columns)))
    codes = ", ".join(f"c{i}" for i in range(len(columns)))
    parts = ", ".join(f"split_part(x, {_SEP}, {n})" for n in range(1, len(_PARTS)))
    return f"""
WITH checked AS MATERIALIZED (
    SELECT user_id, written, {", ".join(_code_sql(i) for i in range(len(columns)))}, {findings} AS findings
    FROM (
        SELECT u."userID" AS user_id,
               w.written,
               {", ".join(_checked_columns(column, i, plan) for i, column in enumerate(columns))}
        FROM users AS u,
             {documents},
             -- A user's documents count as written by the recompute when its totalVolume carries
             -- the run's provenance (runId or asOf; the platform's own code writes neither).
             LATERAL (SELECT COALESCE(jsonb_typeof(d{total_volume}.doc) = 'object' AND d{total_volume}.doc ?| ARRAY['runId', 'asOf'], false)
                      AS written OFFSET 0) AS w
        WHERE {part}
        OFFSET 0
    ) AS c
)
SELECT NULL AS column, 'codes' AS section, NULL AS kind, NULL AS key, NULL AS found, NULL AS expected,
       count(*) AS users, NULL::int[] AS example_user_ids, NULL::text[] AS example_values,
       ARRAY[written::int, {codes}] AS counts
FROM checked
GROUP BY written, {codes}
UNION ALL
SELECT {parts}, count(*), (array_agg(user_id ORDER BY user_id))[1:{EXAMPLES}],
       (array_agg(split_part(x, {_SEP}, {len(_PARTS)}) ORDER BY user_id))[1:{EXAMPLES}], NULL
FROM checked, unnest(findings) AS x
GROUP BY 1, 2, 3, 4, 5, 6
"""


def column_counts(codes: pl.DataFrame) -> list[int]:
    """The ``codes`` rows of structure_sql as COUNTS for each column in SHAPES order (one flat
    list): users summed over the code combinations where each count holds."""
    frame = codes.select(
        pl.col("users"), pl.col("counts").list.get(0).alias("written"), *(pl.col("counts").list.get(i + 1).alias(f"c{i}") for i in range(len(SHAPES)))
    )

    def holds(code: pl.Expr) -> list[pl.Expr]:
        """Whether each of COUNTS holds for a column's code (in COUNTS order)."""
        state = code % 4
        objects = state >= COMPLIANT
        by_kind = [(code // (4 << n)) % 2 == 1 for n in range(len(KINDS))]
        return [state == NULL_DOCUMENT, objects, state == COMPLIANT, objects & (pl.col("written") == 1), *by_kind]

    sums = [
        (pl.col("users") * predicate.cast(pl.Int64)).sum().alias(f"{i}.{n}")
        for i in range(len(SHAPES))
        for n, predicate in enumerate(holds(pl.col(f"c{i}")))
    ]
    return [int(total) for total in frame.select(sums).row(0)]


def structure_findings(cursor, plan: Plan, part: str = "true") -> pl.DataFrame:
    """Every structure finding of every JSON column, from one pass over ``users`` (those ``part``
    chooses): one row per (column, section, kind, key, found, expected), and one row of counts
    (section ``counts``: COUNTS for each column in SHAPES order)."""
    cursor.execute(structure_sql(plan, part, json_columns(cursor)))
    rows = pl.from_arrow(cursor.fetch_arrow_table())
    summed = column_counts(rows.filter(pl.col("section") == "codes"))
    counts = rows.clear(1).with_columns(section=pl.lit("counts"), counts=pl.Series([summed], dtype=rows.schema["counts"]))
    return pl.concat([counts, rows.filter(pl.col("section") != "codes")])


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
    """Each JSON column's compliance report, by column name (SHAPES order)."""
    counts = findings.filter(pl.col("section") == "counts")["counts"][0].to_list()
    rows = findings.filter(pl.col("section") != "counts").with_columns(
        pl.col("kind", "key", "found", "expected").replace("", None),
        pl.col("example_values").list.eval(pl.element().replace("", None)),
    )
    return {
        column: _column_compliance(column, dict(zip(COUNTS, counts[i * len(COUNTS) : (i + 1) * len(COUNTS)])), rows.filter(pl.col("column") == column))
        for i, column in enumerate(SHAPES)
    }


def _rows(findings: pl.DataFrame, section: str, kind: str | None = None) -> list[dict]:
    """One section's findings (of one kind), most users first, then by key and found type."""
    chosen = findings.filter(pl.col("section") == section)
    if kind is not None:
        chosen = chosen.filter(pl.col("kind") == kind)
    return chosen.sort(["users", "key", "kind", "found"], descending=[True, False, False, False], nulls_last=True).to_dicts()


_FINDING_FIELDS = ("path", "key", "found", "expected", "users", "example_user_ids", "example_values")


def _finding_entry(column: str, row: dict) -> dict:
    """One deviation as the report lists it; ``path`` is the key's path with its column (``personalData.kyc.status``)."""
    return {name: (f"{column}.{row['key']}" if name == "path" else row[name]) for name in _FINDING_FIELDS}


def _column_compliance(column: str, counts: dict[str, int], findings: pl.DataFrame) -> dict:
    """One column's report: NULL, non-object and compliant counts and shares; per deviation
    kind, the documents with one and the deviations found (at most LISTED, most users first)."""
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
        "deviating": counts["objects"] - compliant,
        # Objects with at least one deviation of the kind (one document may count for several kinds).
        "deviating_by_kind": {kind: counts[kind] for kind in KINDS},
    }
    if column in RECOMPUTED:
        report["written_by_recompute"] = counts["written"]
    not_listed = {}
    for kind, name in KIND_LISTS.items():
        found = _rows(findings, "deviation", kind)
        report[name] = [_finding_entry(column, r) for r in found[:LISTED]]
        if len(found) > LISTED:
            not_listed[kind] = len(found) - LISTED
    return report | {"not_listed": not_listed}


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
     LATERAL (SELECT {{volumes}} AS doc OFFSET 0) AS v,  -- parsed once per user (see structure_sql)
     LATERAL (SELECT {{status}} AS doc OFFSET 0) AS s
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
    typed = json_columns(cursor)
    cursor.execute(STORED_SQL.replace("{part}", part).replace("{volumes}", parsed("mlmVolumes", typed)).replace("{status}", parsed("mlmStatus", typed)))
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

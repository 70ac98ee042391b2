"""The audit: read-only. How far the stored MLM state is from what the sources say, and how well
every JSON column keeps its documented structure.

``audit_report`` is plain (the CLI calls it without Prefect); the ``mlm-audit`` flow runs it as a
task and publishes the report as a Markdown artifact. Both write three files into ``out_dir``:
``audit-<as_of>.md`` (for people), ``audit-<as_of>.json`` (for machines) and
``audit-<as_of>.png`` (the fullVolume drift as a bar chart) and ``audit-<as_of>.html`` (one
self-contained page: the tables and charts, drawn with matplotlib, inline).

Nothing is written to the database: the stored side is read in one READ ONLY transaction, the
recomputed side is the nightly computation's dry run (rolled back, recorded nowhere). Nothing
is created either: a database without the platform's tables or the project's current
migrations is refused (``db.migrate.SchemaNotReady``) before anything is read.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from db import audit as numbers
from db.connection import Database, open_database
from flows.config import Settings, load_plan
from flows.context import opened_database
from flows.pipeline import RunOutcome, ValidationFailed, run_period
from flows.tasks import IO_TASK
from transforms.plan import Plan
from transforms.problems import InputRejected
from transforms.recompute import period_of

# --- the report ---------------------------------------------------------------------------------


def recomputed(db: Database, plan: Plan, as_of: datetime, root_telegram_id: int | None) -> tuple[RunOutcome | None, dict]:
    """The nightly computation as a dry run (rolled back, recorded nowhere): the outcome, or
    None and why there is none (a refusal or a failed validation is a finding, not a crash)."""
    try:
        # quarantine: an audit must still measure everyone else when some rows are bad input.
        # wait (run_period's default): a nightly run in progress is waited for, since comparing
        # against a half-finished run would report drift that is about to disappear.
        outcome = run_period(db, plan, as_of=as_of, period=period_of(as_of), root_telegram_id=root_telegram_id, quarantine=True, dry_run=True)
    except InputRejected as rejected:
        return None, {"status": "refused", "error": str(rejected), "problems": [p.as_dict() for p in rejected.problems]}
    except ValidationFailed as failed:
        return None, {"status": "validation failed", "error": str(failed), "failures": failed.failures[:100]}
    return outcome, {"status": "computed"}


def drift_section(outcome: RunOutcome | None, status: dict, stored_values: pl.DataFrame, plan: Plan) -> dict:
    """The report's drift: what the dry run would change and how far stored is from recomputed."""
    if outcome is None:
        return status
    return status | {
        "changes": outcome.changes,
        "quarantined": [p.as_dict() for p in outcome.recomputed.problems],
        **numbers.persistence_drift(stored_values, outcome.recomputed.state, plan),
    }


def audit_report(db: Database, plan: Plan, as_of: datetime, root_telegram_id: int | None, out_dir: str | Path) -> dict:
    """The audit as of ``as_of``: structure per JSON column and persistence drift; also written
    to ``out_dir`` as Markdown, JSON and a PNG chart (their paths under ``files``)."""
    as_of = as_of.astimezone(timezone.utc)
    started = time.perf_counter()
    # The stored side (SQL in the server) runs while the dry run computes (Polars in this
    # process, then the server's write path): the machine has two cores. The two read their own
    # snapshots; a platform write between them shows up as drift of that user, as it would in a
    # nightly run started at that moment.
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(numbers.stored_snapshot, db, plan)
        outcome, status = recomputed(db, plan, as_of, root_telegram_id)
        stored = reading.result()
    report = {
        "as_of": as_of.isoformat(),
        "period": period_of(as_of),
        "plan_version": plan.version,
        "users": stored.values.height,
        "structure": numbers.structure_compliance(stored.findings),
        "drift": drift_section(outcome, status, stored.values, plan),
        "seconds": round(time.perf_counter() - started, 3),
    }
    report["files"] = report_files(report, Path(out_dir), numbers.as_of_label(as_of))
    return report


def report_files(report: dict, folder: Path, label: str) -> dict[str, str]:
    """Write the report's Markdown, JSON and chart into ``folder``; their paths by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds = (("markdown", "md"), ("json", "json"), ("chart", "png"), ("html", "html"))
    paths = {kind: folder / f"audit-{label}.{suffix}" for kind, suffix in kinds}
    files = {kind: str(path) for kind, path in paths.items()}
    paths["chart"].write_bytes(chart_png(report["drift"].get("full_volume_histogram") or []))
    paths["html"].write_text(audit_html(report), encoding="utf-8")
    paths["markdown"].write_text(audit_markdown(report, chart=paths["chart"].name), encoding="utf-8")
    paths["json"].write_text(json.dumps(report | {"files": files}, indent=1, default=str), encoding="utf-8")
    return files


# --- Markdown -----------------------------------------------------------------------------------


def _cell(value) -> str:
    """A value safe inside a Markdown table cell; ``-`` when missing."""
    if value is None or value == []:
        return "-"
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    return str(value).replace("|", "\\|").replace("\n", " ")


_NUMBER = re.compile(r"^(-|-?[0-9][0-9,]*(\.[0-9]+)?%?)$")


def _table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table (columns holding only numbers right-aligned), then a blank line."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [i > 0 and bool(cells) and all(_NUMBER.match(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(map(_cell, header)) + " |", "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in cells] + [""]


def _money(text: str | None) -> str:
    """Exact decimal text with thousands separators (``"-1234567.50"`` -> ``"-1,234,567.50"``)."""
    if text is None:
        return "-"
    whole, dot, cents = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-') or 0):,}{dot}{cents}"


def _ids(ids: list, limit: int = 20) -> str:
    """The first ``limit`` ids and how many more; ``-`` for none."""
    shown = ", ".join(map(str, ids[:limit])) or "-"
    return shown + (f" and {len(ids) - limit:,} more" if len(ids) > limit else "")


def _share(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _examples(ids, values=None) -> str:
    """Example userIDs, each with its value when there is one."""
    if not values or not any(values):
        return _cell(ids)
    return ", ".join(f"{i} ({v})" if v is not None else str(i) for i, v in zip(ids, values))


MD_ROWS = 20  # deviations shown per column and kind in the Markdown (the JSON lists more)
_KIND_TITLES = {"missing_key": "missing keys", "unknown_key": "unknown keys", "wrong_type": "wrong types", "out_of_domain": "values outside the domain"}
_KIND_WORDS = {"missing_key": "missing key", "unknown_key": "unknown key", "wrong_type": "wrong type", "out_of_domain": "bad value"}  # terminal lines


def _md_structure(structure: dict) -> list[str]:
    """The compliance table (shares and documents per deviation kind), then each column's deviations."""
    lines = [
        "## Structure of the JSON columns",
        "",
        "A document complies when it is an object whose keys, nested keys included, match the platform's documented shape "
        "(`db/document_shapes.py`): every required key present, no unknown key, every value of the documented type and domain. "
        "The kind columns count documents with at least one deviation of that kind.",
        "",
    ]
    lines += _table(
        ["column", "users", "NULL", "not an object", "objects", "compliant", "compliant share", "of objects", *_KIND_TITLES.values()],
        [
            [name, f"{c['users']:,}", f"{c['null']:,}", ", ".join(f"{n['type']} {n['users']:,}" for n in c["non_object"]) or "0",
             f"{c['objects']:,}", f"{c['compliant']:,}", _share(c["compliant_share"]), _share(c["compliant_share_of_objects"]),
             *(f"{c['deviating_by_kind'][kind]:,}" for kind in _KIND_TITLES)]
            for name, c in structure.items()
        ],
    )
    for name, c in structure.items():
        lines += _md_column(name, c)
    return lines


def _md_column(name: str, column: dict) -> list[str]:
    """One column: its non-object documents, then its deviations, most users first within each kind."""
    lines = [f"### {name}", ""]
    for shape in column["non_object"]:
        lines += [f"- not an object ({shape['type']}): {shape['users']:,} users, e.g. userID {_cell(shape['example_user_ids'])}"]
    if "written_by_recompute" in column:
        lines += [f"- documents of users the recompute has written: {column['written_by_recompute']:,}"]
    lines += [f"- compliant: {column['compliant']:,} of {column['users']:,} ({_share(column['compliant_share'])}); deviating objects: {column['deviating']:,}", ""]
    rows, more = [], []
    for kind, title in _KIND_TITLES.items():
        found = column[numbers.KIND_LISTS[kind]]
        rows += [[kind, d["path"], d["found"], d["expected"], f"{d['users']:,}", _examples(d["example_user_ids"], d["example_values"])] for d in found[:MD_ROWS]]
        hidden = max(0, len(found) - MD_ROWS) + column["not_listed"].get(kind, 0)
        if hidden > 0:
            more.append(f"- and {hidden:,} rarer {title} (the JSON report lists up to {numbers.LISTED} per kind)")
    if rows:
        lines += _table(["deviation", "path", "found", "expected", "users", "examples: userID (value)"], rows)
    return lines + (more + [""] if more else [])


def _md_drift(drift: dict, chart: str) -> list[str]:
    lines = ["## Drift: stored against recomputed", ""]
    if drift.get("status") != "computed":
        return lines + [f"Not computed ({drift.get('status')}):", "", "```", str(drift.get("error")), "```", ""]
    lines += [f"Recomputed from purchases and the tree by the nightly computation as a dry run; {drift['users_compared']:,} users compared.", ""]
    lines += _md_changes(drift["changes"]) + _md_ranks(drift["ranks"]) + _md_pioneers(drift["pioneers"])
    lines += _md_null_documents(drift["null_documents"]) + _md_money(drift["money"]) + _md_histogram(drift["full_volume_histogram"], chart)
    if drift["quarantined"]:
        lines += ["### Bad input (left out of the comparison)", ""] + [f"- {p['kind']}: ids {_ids(p['ids'])}; {p['detail']}" for p in drift["quarantined"]] + [""]
    return lines


def _md_changes(changes: dict) -> list[str]:
    by_key = sorted((changes.get("by_key") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    lines = ["### What a nightly run would change", "", f"{changes.get('users', 0):,} users differ in at least one owned value.", ""]
    return lines + (_table(["owned value", "users"], [[k, f"{v:,}"] for k, v in by_key]) if by_key else [])


def _md_ranks(ranks: dict) -> list[str]:
    names = ranks["rank_names"]
    lines = ["### Ranks", "", f"{ranks['users_differing']:,} users hold another rank than the recompute gives them (rows: stored, columns: recomputed).", ""]
    rows = [[stored, *(f"{row.get(n, 0):,}" for n in names)] for stored, row in ranks["crosstab"].items()]
    return lines + _table(["stored \\ recomputed", *names], rows)


def _md_pioneers(pioneers: dict) -> list[str]:
    return [
        "### Pioneers",
        "",
        f"- recomputed pioneers: {pioneers['recomputed']}; stored (hasPioneerBonus): {pioneers['stored']}",
        f"- missing from the stored documents: {pioneers['missing']} (userID {_ids(pioneers['missing_user_ids'])})",
        f"- stored but not recomputed: {pioneers['extra']} (userID {_ids(pioneers['extra_user_ids'])})",
        "",
    ]


def _md_null_documents(nulls: dict) -> list[str]:
    rows = [[name, f"{n['users']:,}", n["example_user_ids"]] for name, n in nulls.items()]
    return ["### NULL documents the recompute would fill", ""] + _table(["column", "users", "example userIDs"], rows)


def _md_money(money: dict) -> list[str]:
    rows = [
        [name, f"{m['users_differing']:,}", f"{m['users_missing_value']:,}", _money(m["total_abs_difference"]), _money(m["net_difference"]),
         _money(m["largest_abs_difference"]), m["largest_user_id"]]
        for name, m in money.items()
    ]
    header = ["money (USD)", "users differing", "no stored value", "total |difference|", "net (recomputed - stored)", "largest |difference|", "largest at userID"]
    return ["### Money", "", "A missing stored value counts as 0.", ""] + _table(header, rows)


def _md_histogram(histogram: list[dict], chart: str) -> list[str]:
    rows = [[h["bucket"], f"{h['users']:,}"] for h in histogram]
    return ["### |stored fullVolume - recomputed|, users per bucket (USD)", "", f"![fullVolume drift]({chart})", ""] + _table(["difference (USD)", "users"], rows)


def audit_markdown(report: dict, chart: str = "") -> str:
    """The report for people: Markdown, for the artifact and the ``.md`` file."""
    lines = [
        f"# MLM audit as of {report['as_of']}",
        "",
        f"period **{report['period']}**, plan **{report['plan_version']}**, users **{report['users']:,}**. Read-only: nothing was written.",
        "",
    ]
    return "\n".join(lines + _md_structure(report["structure"]) + _md_drift(report["drift"], chart))


def audit_lines(report: dict) -> list[str]:
    """The report in a few terminal lines: compliance per column, the drift's headline, the files."""
    lines = [f"audit as of {report['as_of']} (period {report['period']}, plan {report['plan_version']}): {report['users']:,} users, read-only"]
    for name, column in report["structure"].items():
        shapes = sum(s["users"] for s in column["non_object"])
        lines.append(
            f"  {name:<18} compliant {_share(column['compliant_share']):>6}  NULL {column['null']:,}  not an object {shapes:,}"
            f"  deviating {column['deviating']:,} ("
            + ", ".join(f"{_KIND_WORDS[kind]} {n:,}" for kind, n in column["deviating_by_kind"].items())
            + ")"
        )
    drift = report["drift"]
    if drift["status"] != "computed":
        lines.append(f"  drift not computed ({drift['status']}): {str(drift.get('error', '')).splitlines()[0]}")
    else:
        money = drift["money"]["fullVolume"]
        lines += [
            f"  drift: {drift['changes']['users']:,} users differ; ranks {drift['ranks']['users_differing']:,}; "
            f"pioneers missing {drift['pioneers']['missing']}, extra {drift['pioneers']['extra']}",
            f"  fullVolume: {money['users_differing']:,} users off by {_money(money['total_abs_difference'])} in total, "
            f"at most {_money(money['largest_abs_difference'])} (userID {money['largest_user_id']})",
        ]
    return lines + [f"  report: {report['files']['markdown']} (+ .json, .png, .html)", f"  took {report['seconds']:.1f} s"]


# --- the charts and the page (matplotlib: flows/html_report.py) --------------------------------


def histogram_figure(histogram: list[dict]):
    """The drift histogram as a bar chart; a log scale, since exact matches usually outnumber
    the rest by orders of magnitude."""
    from flows import html_report as hr

    counts = {"users": [h["users"] for h in histogram]}
    return hr.bar_chart([h["bucket"] for h in histogram], counts, "Users by |stored - recomputed| fullVolume (USD)", log=True)


def chart_png(histogram: list[dict]) -> bytes:
    """The drift chart as PNG bytes."""
    from flows import html_report as hr

    return hr.figure_png(histogram_figure(histogram))


def audit_html(report: dict) -> str:
    """The audit as one self-contained page: compliance per column, ranks, money, the drift charts."""
    from flows import html_report as hr

    structure = report["structure"]
    sections = [
        ("Structure of the JSON columns", hr.table(
            ["column", "users", "NULL", "objects", "compliant", "compliant share", *_KIND_TITLES.values()],
            [[name, c["users"], c["null"], c["objects"], c["compliant"], _share(c["compliant_share"]),
              *(c["deviating_by_kind"][kind] for kind in _KIND_TITLES)] for name, c in structure.items()])),
        ("Compliant documents per column", hr.figure_svg(hr.bar_chart(
            list(structure), {"compliant": [c["compliant"] for c in structure.values()],
                              "deviating": [c["deviating"] for c in structure.values()]}, "Documents per JSON column", log=True))),
    ]  # fmt: skip
    drift = report["drift"]
    if drift.get("status") == "computed":
        ranks = drift["ranks"]
        names = ranks["rank_names"]
        stored = list(ranks["crosstab"])
        counts = [[ranks["crosstab"][s].get(n, 0) for n in names] for s in stored]
        money = drift["money"]
        distribution = {
            "stored": [sum(ranks["crosstab"].get(n, {}).values()) for n in names],
            "recomputed": [sum(r.get(n, 0) for r in ranks["crosstab"].values()) for n in names],
        }
        sections += [
            ("What a nightly run would change", hr.paragraph(f"{drift['changes'].get('users', 0):,} users differ in at least one owned value.")
             + hr.table(["owned value", "users"], sorted((drift["changes"].get("by_key") or {}).items(), key=lambda kv: (-kv[1], kv[0])))),
            ("Ranks: stored against recomputed", hr.figure_svg(hr.heatmap(stored, names, counts, "Users per rank pair", "recomputed", "stored"))
             + hr.table(["stored \\ recomputed", *names], [[s, *row] for s, row in zip(stored, counts)])),
            ("Rank distribution", hr.figure_svg(hr.bar_chart(names, distribution, "Users per rank", log=True))),
            ("Money (USD)", hr.table(["money", "users differing", "no stored value", "total |difference|", "net", "largest", "at userID"],
                                     [[k, m["users_differing"], m["users_missing_value"], _money(m["total_abs_difference"]), _money(m["net_difference"]),
                                       _money(m["largest_abs_difference"]), m["largest_user_id"]] for k, m in money.items()])),
            ("Drift histogram: |stored fullVolume - recomputed|", hr.figure_svg(histogram_figure(drift["full_volume_histogram"]))
             + hr.table(["difference (USD)", "users"], [[h["bucket"], h["users"]] for h in drift["full_volume_histogram"]])),
        ]  # fmt: skip
    else:
        sections.append(("Drift", hr.paragraph(f"Not computed ({drift.get('status')}): {drift.get('error')}")))
    subtitle = f"Period {report['period']}, plan {report['plan_version']}, {report['users']:,} users. Read-only: nothing was written."
    return hr.page(f"MLM audit as of {report['as_of']}", sections, subtitle=subtitle)


# --- Prefect ------------------------------------------------------------------------------------


@task(name="audit", **IO_TASK)
def audit_task(uri: str, plan: Plan, as_of: datetime, root_telegram_id: int | None, out_dir: str) -> dict:
    """The audit report (files written), on its own database handle."""
    db = open_database(uri)
    try:
        return audit_report(db, plan, as_of, root_telegram_id, out_dir)
    finally:
        db.engine.dispose()


@flow(name="mlm-audit", log_prints=True)
def audit(as_of: datetime | None = None, out_dir: str = ".mlm/audit") -> dict:
    """Audit the stored MLM state as of ``as_of`` (default: now, UTC): read-only. Returns the
    report; publishes it as a Markdown artifact and writes it into ``out_dir``."""
    settings = Settings.from_env()
    plan = load_plan(settings.plan_path)
    as_of = (as_of or datetime.now(timezone.utc)).astimezone(timezone.utc)
    with opened_database(settings, "read", quiet=True) as db:  # read-only: creates nothing
        report = audit_task(db.uri, plan, as_of, settings.root_telegram_id, out_dir)
    create_markdown_artifact(audit_markdown(report, chart=Path(report["files"]["chart"]).name), key="mlm-audit", description="mlm-recompute audit")
    print(f"audit as of {report['as_of']}: {report['files']['markdown']}")
    return report

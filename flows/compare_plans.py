"""``mlm-recompute compare-plans OTHER.toml``: the current plan and another applied to the same
inputs, side by side. Read-only: the inputs are read once (db.extract, nothing memoized), both
plans go through the nightly run's ``recompute``, and nothing is written to the database.

The report (Markdown, JSON, a PNG chart and an HTML page in ``out_dir``; a Prefect flow
publishes it as artifacts): the users whose rank, activity, qualifying volume or pioneer status
would differ, the rank-by-rank transition matrix, the change in users per rank, the largest
movers, and the run time. Previous ranks are the stored ones, as a nightly run takes them.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from prefect import flow, task

from db import extract
from db.audit import as_of_label, usd
from db.connection import Database, open_database
from flows import html_report as hr
from flows.config import Settings, load_plan
from flows.context import opened_database
from flows.tasks import IO_TASK
from transforms.documents import Provenance
from transforms.plan import Plan
from transforms.recompute import recompute

LISTED = 50  # userIDs listed per kind of difference (the counts are always whole)
MOVERS = 20
COMPARED = ["rank", "is_active", "qualifying_volume_cents", "is_pioneer"]


def _computed(inputs, plan: Plan, as_of: datetime, period: str, root_telegram_id: int | None) -> tuple[pl.DataFrame, list[dict]]:
    provenance = Provenance(run_id=0, plan_version=plan.version, as_of=as_of, calculated_at=datetime.now(timezone.utc))
    # quarantine: a sandbox measures everyone it can; the bad rows are reported, not fatal
    result = recompute(inputs, plan, period=period, root_telegram_id=root_telegram_id, provenance=provenance, quarantine=True)
    state = result.state.select(
        "user_id", "rank", "rank_order", "is_active", "qualifying_volume_cents", pl.col("pioneer_number").is_not_null().alias("is_pioneer")
    )
    return state, [p.as_dict() for p in result.problems]


def side_by_side(current: pl.DataFrame, other: pl.DataFrame) -> pl.DataFrame:
    """One row per user computed under both plans: each compared value, ``_other`` suffixed."""
    return current.join(other, on="user_id", how="inner", suffix="_other").sort("user_id")


def differences(both: pl.DataFrame) -> dict:
    """Per compared value, how many users differ and which (the first LISTED userIDs)."""
    found = {}
    for column in COMPARED:
        ids = both.filter(pl.col(column).ne_missing(pl.col(f"{column}_other")))["user_id"]
        found[column] = {"users": ids.len(), "user_ids": ids.head(LISTED).to_list()}
    any_ = both.filter(pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_other")) for c in COMPARED]))["user_id"]
    return {"users": any_.len(), "user_ids": any_.head(LISTED).to_list(), "by_value": found}


def transitions(both: pl.DataFrame, current: Plan, other: Plan) -> dict:
    """The rank-by-rank matrix: users per (rank under the current plan, rank under the other)."""
    pairs = both.group_by("rank", "rank_other").len()
    counts = {(a, b): n for a, b, n in pairs.iter_rows()}
    rows, columns = current.rank_names, other.rank_names
    return {"rows": rows, "columns": columns, "counts": [[int(counts.get((a, b), 0)) for b in columns] for a in rows]}


def per_rank(both: pl.DataFrame, current: Plan, other: Plan) -> list[dict]:
    names = list(dict.fromkeys(current.rank_names + other.rank_names))
    now = dict(both.group_by("rank").len().iter_rows())
    then = dict(both.group_by("rank_other").len().iter_rows())
    return [{"rank": n, "current": int(now.get(n, 0)), "other": int(then.get(n, 0)), "change": int(then.get(n, 0) - now.get(n, 0))} for n in names]


def movers(both: pl.DataFrame) -> list[dict]:
    """The users whose rank moves most (by rank order), then whose qualifying volume moves most."""
    moved = both.with_columns(
        rank_steps=pl.col("rank_order_other").cast(pl.Int32) - pl.col("rank_order").cast(pl.Int32),
        volume_change=pl.col("qualifying_volume_cents_other") - pl.col("qualifying_volume_cents"),
    ).filter((pl.col("rank_steps") != 0) | (pl.col("volume_change") != 0))
    top = moved.sort([pl.col("rank_steps").abs(), pl.col("volume_change").abs(), "user_id"], descending=[True, True, False]).head(MOVERS)
    return [
        {"user_id": r["user_id"], "rank": r["rank"], "rank_other": r["rank_other"], "rank_steps": r["rank_steps"],
         "qualifying_volume": usd(r["qualifying_volume_cents"]), "qualifying_volume_other": usd(r["qualifying_volume_cents_other"])}
        for r in top.iter_rows(named=True)
    ]  # fmt: skip


def compare(db: Database, current: Plan, other: Plan, *, as_of: datetime, period: str, root_telegram_id: int | None) -> dict:
    """Both plans over the same inputs (JSON-ready report, no files)."""
    started = time.perf_counter()
    inputs, watermark = extract.inputs(db, as_of, current.pioneer_min_purchase_cents)
    reads = 1
    other_inputs = inputs
    if other.pioneer_min_purchase_cents != current.pioneer_min_purchase_cents:
        # The extract picks each user's pioneer candidate with the plan's minimum, in SQL.
        other_inputs, _ = extract.inputs(db, as_of, other.pioneer_min_purchase_cents)
        reads = 2
    read_s = time.perf_counter() - started
    mine, problems = _computed(inputs, current, as_of, period, root_telegram_id)
    theirs, other_problems = _computed(other_inputs, other, as_of, period, root_telegram_id)
    both = side_by_side(mine, theirs)
    return {
        "as_of": as_of.astimezone(timezone.utc).isoformat(),
        "period": period,
        "plan": current.version,
        "other_plan": other.version,
        "users_compared": both.height,
        "inputs_read": reads,
        "watermark": vars(watermark),
        "differences": differences(both),
        "transitions": transitions(both, current, other),
        "per_rank": per_rank(both, current, other),
        "movers": movers(both),
        "quarantined": {"plan": problems, "other_plan": other_problems},
        "seconds": {"read": round(read_s, 3), "total": round(time.perf_counter() - started, 3)},
    }


_WORDS = {"rank": "rank", "is_active": "activity", "qualifying_volume_cents": "qualifying volume", "is_pioneer": "pioneer status"}


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|"] + [
        "| " + " | ".join(str(v) for v in row) + " |" for row in rows
    ] + [""]


def _ids(ids: list, total: int) -> str:
    return (", ".join(map(str, ids)) or "-") + (f" and {total - len(ids):,} more" if total > len(ids) else "")


def compare_markdown(report: dict, chart: str = "") -> str:
    d, t = report["differences"], report["transitions"]
    lines = [
        f"# Plan {report['other_plan']} against {report['plan']}, as of {report['as_of']}",
        "",
        f"period **{report['period']}**, {report['users_compared']:,} users, inputs read {report['inputs_read']} time(s), "
        f"{report['seconds']['total']:.1f} s. Read-only: nothing was written.",
        "",
        f"**{d['users']:,} users would differ** in rank, activity, qualifying volume or pioneer status.",
        "",
    ]
    lines += _md_table(["value", "users differing", "userIDs"], [[_WORDS[k], f"{v['users']:,}", _ids(v["user_ids"], v["users"])] for k, v in d["by_value"].items()])
    lines += ["## Users per rank", ""] + _md_table(["rank", report["plan"], report["other_plan"], "change"], [[r["rank"], f"{r['current']:,}", f"{r['other']:,}", f"{r['change']:+,}"] for r in report["per_rank"]])
    if chart:
        lines += [f"![users per rank]({chart})", ""]
    lines += ["## Transitions (rows: current plan, columns: other plan)", ""]
    lines += _md_table(["current \\ other", *t["columns"]], [[name, *(f"{n:,}" for n in row)] for name, row in zip(t["rows"], t["counts"])])
    lines += ["## Largest movers", ""] + _md_table(
        ["userID", "rank", "rank (other)", "steps", "qualifying volume", "qualifying volume (other)"],
        [[m["user_id"], m["rank"], m["rank_other"], f"{m['rank_steps']:+}", m["qualifying_volume"], m["qualifying_volume_other"]] for m in report["movers"]],
    )
    return "\n".join(lines)


def _figures(report: dict):
    ranks = report["per_rank"]
    t = report["transitions"]
    per_rank_chart = hr.bar_chart([r["rank"] for r in ranks], {f"current ({report['plan']})": [r["current"] for r in ranks], f"other ({report['other_plan']})": [r["other"] for r in ranks]}, "Users per rank", log=True)
    matrix = hr.heatmap(t["rows"], t["columns"], t["counts"], "Rank transitions", f"rank under {report['other_plan']}", f"rank under {report['plan']}")
    return per_rank_chart, matrix


def compare_html(report: dict) -> str:
    d, t = report["differences"], report["transitions"]
    per_rank_chart, matrix = _figures(report)
    return hr.page(
        f"Plan {report['other_plan']} against {report['plan']}",
        [
            ("What would differ", hr.paragraph(f"{d['users']:,} of {report['users_compared']:,} users would differ.")
             + hr.table(["value", "users", "userIDs"], [[_WORDS[k], v["users"], _ids(v["user_ids"], v["users"])] for k, v in d["by_value"].items()])),
            ("Users per rank", hr.figure_svg(per_rank_chart) + hr.table(["rank", report["plan"], report["other_plan"], "change"], [[r["rank"], r["current"], r["other"], f"{r['change']:+,}"] for r in report["per_rank"]])),
            ("Rank transitions", hr.figure_svg(matrix) + hr.table(["current \\ other", *t["columns"]], [[n, *row] for n, row in zip(t["rows"], t["counts"])])),
            ("Largest movers", hr.table(["userID", "rank", "rank (other)", "steps", "qualifying", "qualifying (other)"],
                                        [[m["user_id"], m["rank"], m["rank_other"], m["rank_steps"], m["qualifying_volume"], m["qualifying_volume_other"]] for m in report["movers"]])),
        ],
        subtitle=f"As of {report['as_of']} (period {report['period']}); read-only; {report['seconds']['total']:.1f} s.",
    )  # fmt: skip


def compare_files(report: dict, folder: Path) -> dict[str, str]:
    """Write the report's Markdown, JSON, chart (PNG) and HTML page; their paths by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"compare-{as_of_label(datetime.fromisoformat(report['as_of']))}"
    paths = {kind: folder / f"{stem}.{suffix}" for kind, suffix in (("markdown", "md"), ("json", "json"), ("chart", "png"), ("html", "html"))}
    files = {kind: str(p) for kind, p in paths.items()}
    paths["chart"].write_bytes(hr.figure_png(_figures(report)[0]))
    paths["markdown"].write_text(compare_markdown(report, chart=paths["chart"].name), encoding="utf-8")
    paths["html"].write_text(compare_html(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(report | {"files": files}, indent=1, default=str), encoding="utf-8")
    return files


def compare_lines(report: dict) -> list[str]:
    d = report["differences"]
    lines = [f"plan {report['other_plan']} against {report['plan']} as of {report['as_of']}: {report['users_compared']:,} users, read-only",
             f"  {d['users']:,} users would differ"]  # fmt: skip
    lines += [f"    {_WORDS[k]}: {v['users']:,} ({_ids(v['user_ids'][:10], v['users'])})" for k, v in d["by_value"].items()]
    lines += ["  users per rank: " + ", ".join(f"{r['rank']} {r['current']:,} -> {r['other']:,}" for r in report["per_rank"])]
    lines += [f"  files: {report['files']['html']} (+ .md, .json, .png)"] if "files" in report else []
    return lines + [f"  took {report['seconds']['total']:.1f} s (inputs read in {report['seconds']['read']:.1f} s)"]


# --- Prefect ------------------------------------------------------------------------------------


@task(name="compare-plans", **IO_TASK)
def compare_task(uri: str, current: Plan, other: Plan, as_of: datetime, period: str, root_telegram_id: int | None, out_dir: str) -> dict:
    db = open_database(uri)
    try:
        report = compare(db, current, other, as_of=as_of, period=period, root_telegram_id=root_telegram_id)
    finally:
        db.engine.dispose()
    return report | {"files": compare_files(report, Path(out_dir))}


@flow(name="mlm-compare-plans", log_prints=True)
def compare_plans(other_plan: str, as_of: datetime | None = None, month: str | None = None, out_dir: str = ".mlm/compare") -> dict:
    """Apply the configured plan and ``other_plan`` (a plan file) to the same inputs: read-only.
    Publishes the Markdown, the differing users (table) and a link to the HTML page."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from flows.periods import month_end, parse_month
    from transforms.recompute import period_of

    settings = Settings.from_env()
    current, other = load_plan(settings.plan_path), load_plan(other_plan)
    if month:
        period = parse_month(month)
        as_of = month_end(period)
    else:
        as_of = (as_of or datetime.now(timezone.utc)).astimezone(timezone.utc)
        period = period_of(as_of)
    with opened_database(settings, "read", quiet=True) as db:
        report = compare_task(db.uri, current, other, as_of, period, settings.root_telegram_id, out_dir)
    create_markdown_artifact(compare_markdown(report), key="mlm-compare-plans", description="mlm-recompute compare-plans")
    rows = [{"value": _WORDS[k], "users": v["users"], "user_ids": ", ".join(map(str, v["user_ids"]))} for k, v in report["differences"]["by_value"].items()]
    create_table_artifact(rows, key="mlm-compare-plans-differences", description="users differing, by value")
    create_link_artifact(Path(report["files"]["html"]).resolve().as_uri(), link_text="compare-plans page", key="mlm-compare-plans-page")
    print("\n".join(compare_lines(report)))
    return report

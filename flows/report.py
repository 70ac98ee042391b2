"""Readable reports of a run, from the dict ``RunOutcome.summary()`` returns (or the one stored
in ``mlm_runs.summary``): Markdown for a Prefect artifact, compact lines for the terminal.

Pure formatting: no database, no Prefect. Every function tolerates missing keys, so summaries
of older runs and of refused runs (only ``{"problems": [...]}``) render too.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from pathlib import Path

from transforms.problems import KINDS

WIDTH = 100  # the terminal renderings never exceed this many columns
IDS_SHOWN = 20  # ids listed before "and N more"
LABEL = 16  # width of the label column of summary_lines
# The pipeline's stages in the order they run ("write" is load and validate in one transaction;
# the two older names are kept for summaries recorded before).
STAGES = ("extract", "compute", "write", "load", "validate", "verify")


# --- small values ---------------------------------------------------------------------------


def _count(value) -> str:
    """An integer with thousands separators; ``-`` when unknown."""
    return "-" if value is None else f"{int(value):,}"


def _plain(value) -> str:
    """An id as it is written in the database (no separators); ``-`` when unknown."""
    return "-" if value is None else str(value)


def _money(value) -> str:
    """Exact decimal text (``"1234.50"``) with thousands separators; ``-`` when unknown."""
    if value is None:
        return "-"
    whole, dot, cents = str(value).partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-') or 0):,}{dot}{cents}"


def _instant(value) -> str:
    """An instant as ``YYYY-MM-DD HH:MM:SS UTC`` (ISO text or datetime); ``-`` when unknown."""
    if value is None or value == "":
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def _minute(value) -> str:
    """An instant to the minute (``YYYY-MM-DD HH:MM``, UTC), for tables; ``-`` when unknown."""
    return _instant(value)[:16] if value else "-"


def _seconds(value) -> str:
    """A duration in seconds, minutes or hours; ``-`` when unknown."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
    if value < 3600:
        return f"{int(value // 60)}m{int(value % 60):02d}s"
    return f"{int(value // 3600)}h{int(value % 3600 // 60):02d}m"


def _yes_no(value) -> str:
    """``yes``, ``no`` or ``-`` for True, False, None."""
    return "-" if value is None else ("yes" if value else "no")


def _ids(ids, limit: int = IDS_SHOWN) -> str:
    """The first ``limit`` ids, comma separated, and how many more there are."""
    ids = list(ids or [])
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit:,} more" if len(ids) > limit else "")


def _first_line(text: str | None, width: int) -> str:
    """The first non-empty line of ``text`` (with the next one when it ends in ``:``, as
    ``input rejected:`` does), cut to ``width`` characters (``…`` when cut)."""
    lines = [part.strip() for part in (text or "").splitlines() if part.strip()] or [""]
    line = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def _cell(value) -> str:
    """A value safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table; numeric columns (all but the first) right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|"]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


# --- what a summary says ----------------------------------------------------------------------


def _problems(summary: dict) -> tuple[str, list[dict]]:
    """The bad input a summary lists: ``("refused", ...)`` or ``("quarantined", ...)``."""
    if summary.get("problems"):
        return "refused", list(summary["problems"])
    return "quarantined", list(summary.get("quarantined") or [])


def _problem_text(problem: dict) -> str:
    """One problem on one line: kind, what is wrong, the ids, the users stranded below them."""
    kind = problem.get("kind", "?")
    id_name, what = KINDS.get(kind, ("id", ""))
    ids = problem.get("ids") or []
    text = f"{kind}: {len(ids):,} {id_name}" + (f" ({_ids(ids)})" if ids else "")
    if what:
        text += f"; {what}"
    if problem.get("detail"):
        text += f"; {problem['detail']}"
    if problem.get("detached_ids"):
        text += f"; unreachable below them: userID {_ids(problem['detached_ids'])}"
    return text


def _sorted_by_count(counts: dict | None) -> list[tuple[str, int]]:
    """``counts`` as (key, count) pairs, largest count first, then by key."""
    return sorted(((str(k), int(v)) for k, v in (counts or {}).items()), key=lambda kv: (-kv[1], kv[0]))


def _stage_rows(summary: dict) -> list[tuple[str, float | None, int | None, float | None]]:
    """(stage, seconds, rows, rows per second) for every timed stage, in pipeline order."""
    timings, rows = summary.get("timings_s") or {}, summary.get("rows") or {}
    stages = [s for s in STAGES if s in timings] + sorted(set(timings) - set(STAGES))
    return [
        (s, timings[s], rows.get(s), rows[s] / timings[s] if rows.get(s) is not None and timings[s] else None)
        for s in stages
    ]


def _title(summary: dict) -> str:
    """``run 42 succeeded``, ``dry run`` or ``run refused``: what the run was and how it ended."""
    if summary.get("dry_run"):
        return "dry run (nothing written)"
    run_id = summary.get("run_id")
    status = summary.get("status") or ("refused" if summary.get("problems") else "unknown")
    kind = "backfill run" if _is_backfill(summary) else "run"  # a backfill's period alone reads like a nightly run's
    return f"{kind} {run_id} {status}" if run_id else f"{kind} {status}"


def _is_backfill(summary: dict) -> bool:
    return summary.get("mode") == "backfill"


def _verdict(summary: dict) -> str:
    """What validation concluded, in one sentence."""
    verified, status = summary.get("verified"), summary.get("status")
    if summary.get("problems") or status == "refused":
        return "refused: bad input, nothing written"
    if verified is True:
        return "verified: stored equals computed (re-read from a new connection after commit, by row version)"
    if verified is False:
        return "verification FAILED after commit: the data was written; see the run's failures"
    if status == "failed" and "validation failed before commit" in (summary.get("error") or ""):
        return "failed: validation failed before commit, nothing written; see the run's failures"
    if _is_backfill(summary) and status in ("succeeded", "dry run"):
        # a backfill writes no user's documents, so there is nothing for the document checks to prove
        done = "computed and rolled back" if summary.get("dry_run") else "written in one transaction"
        return f"not applicable: a backfill writes only the months' period snapshots ({done}), no user's documents"
    if summary.get("dry_run"):
        return "dry run: validated inside the transaction, rolled back, nothing to verify"
    if status == "committed":
        return "committed but not verified: the data was written; the run ended before its verification (see the error)"
    return f"{status}: no validation recorded; see the error" if status in ("failed", "abandoned") else "not recorded"


def _written(summary: dict) -> str:
    """``to write`` for a dry run, ``written`` otherwise."""
    return "to write" if summary.get("dry_run") else "written"


# --- Markdown ---------------------------------------------------------------------------------


def _md_header(summary: dict) -> list[str]:
    """The title and the run's identity."""
    title = _title(summary)
    lines = [f"# {title[:1].upper()}{title[1:]}", ""]
    span = _months_span(summary)  # a backfill names its months, not only the last one
    facts = [
        (span.split(" ", 1)[0], span.split(" ", 1)[1]) if span else ("period", summary.get("period")),
        ("cut-off", _instant(summary.get("as_of")) if summary.get("as_of") else None),
        ("mode", summary.get("mode")),
        ("plan", summary.get("plan_version")),
    ]
    shown = [f"{name} **{value}**" for name, value in facts if value]
    return lines + ([", ".join(shown), ""] if shown else [])


def _md_inputs(summary: dict) -> list[str]:
    """Inputs and watermark: what the snapshot contained."""
    mark = summary.get("watermark") or {}
    if not mark:
        return []
    return [
        "## Inputs & watermark",
        "",
        f"- purchases before the cut-off: {_count(mark.get('purchase_count'))}",
        f"- newest purchaseID: {_plain(mark.get('max_purchase_id'))}",
        f"- users: {_count(mark.get('user_count'))}",
        "",
    ]


def _md_users(summary: dict) -> list[str]:
    """Users computed, changed and written, and how far volumes moved (a backfill's rows are in
    its months table)."""
    if _is_backfill(summary):
        return []
    changes = summary.get("changes") or {}
    facts = [
        ("users computed", _count(summary.get("users_computed")), "users_computed" in summary),
        ("users compared with what is stored", _count(summary.get("users_compared")), "users_compared" in summary),
        ("users with a changed value", _count(changes.get("users")), "users" in changes),
        (f"users {_written(summary)}", _count(summary.get("users_written")), "users_written" in summary),
        ("rank history rows", _count(summary.get("rank_history_rows")), "rank_history_rows" in summary),
        ("period snapshot rows", _count(summary.get("snapshot_rows")), "snapshot_rows" in summary),
        ("full volume moved (total)", _money(changes.get("full_volume_moved_total")), "full_volume_moved_total" in changes),
        ("full volume moved (largest)", _money(changes.get("full_volume_moved_max")), "full_volume_moved_max" in changes),
        ("personal volume moved (total)", _money(changes.get("personal_volume_moved_total")), "personal_volume_moved_total" in changes),
    ]
    shown = [f"- {name}: {value}" for name, value, present in facts if present]
    return ["## Users changed", "", *shown, ""] if shown else []


def _md_changes(summary: dict) -> list[str]:
    """Changes by key, as a table."""
    if "changes" not in summary:
        return []
    rows = _changed_keys(summary)
    if not rows:
        return ["## Changes by key", "", "No owned value changed.", ""]
    return ["## Changes by key", "", *_table(["key", "users"], [[r["key"], _count(r["users"])] for r in rows]), ""]


def _md_ranks(summary: dict) -> list[str]:
    """Rank rises, per rank reached."""
    if "changes" not in summary:
        return []
    rises = _sorted_by_count((summary.get("changes") or {}).get("rank_rises_to"))
    if not rises:
        return ["## Rank changes", "", "No rank rose.", ""]
    table = _table(["rank reached", "users"], [[rank, _count(n)] for rank, n in rises])
    return ["## Rank changes", "", *table, "", f"{sum(n for _, n in rises):,} users rose in rank.", ""]


def _md_pioneers(summary: dict) -> list[str]:
    """New pioneers and their userIDs."""
    if "new_pioneers" not in summary:
        return []
    pioneers = summary.get("new_pioneers") or []
    if not pioneers:
        return ["## New pioneers", "", "None.", ""]
    return ["## New pioneers", "", f"{len(pioneers):,} new: userID {_ids(pioneers, 50)}", ""]


def _md_problems(summary: dict) -> list[str]:
    """Quarantined rows (left out of a run) or the bad input that refused it."""
    how, problems = _problems(summary)
    if how == "quarantined" and "quarantined" not in summary:
        return []
    title = "## Refused: bad input" if how == "refused" else "## Quarantined rows"
    if not problems:
        return [title, "", "None.", ""]
    return [title, "", *[f"- {_problem_text(p)}" for p in problems], ""]


def _md_validation(summary: dict) -> list[str]:
    """How validation ended, and the error if the run failed."""
    lines = ["## Validation", "", _verdict(summary), ""]
    if summary.get("error"):
        lines += ["```", _first_line(summary["error"], 500), "```", ""]
    return lines


def _md_timings(summary: dict) -> list[str]:
    """Stage timings with rows per second."""
    stages = _stage_rows(summary)
    if not stages:
        return []
    rows = [[s, f"{sec:.3f}", _count(n), _count(rate)] for s, sec, n, rate in stages]
    total = sum(sec for _, sec, _, _ in stages)
    return ["## Stage timings", "", *_table(["stage", "seconds", "rows", "rows/s"], rows + [["**total**", f"{total:.3f}", "", ""]]), ""]


def summary_markdown(summary: dict) -> str:
    """A Markdown report of one run, from its summary dict."""
    summary = summary or {}
    sections = [_md_header, _md_months, _md_inputs, _md_users, _md_changes, _md_ranks, _md_pioneers, _md_problems, _md_validation, _md_timings]
    return "\n".join(line for section in sections for line in section(summary)).rstrip() + "\n"


def changes_table(summary: dict) -> list[dict]:
    """The run's table artifact: for a backfill its months (``months_table``); for any other run
    rows ``{"key", "users"}`` of the changed owned values, most users first."""
    if _is_backfill(summary or {}):
        return months_table(summary)
    return _changed_keys(summary)


def _changed_keys(summary: dict) -> list[dict]:
    by_key = ((summary or {}).get("changes") or {}).get("by_key")
    return [{"key": key, "users": count} for key, count in _sorted_by_count(by_key)]


# --- backfills --------------------------------------------------------------------------------


def months_table(summary: dict) -> list[dict]:
    """One row ``{"month", "outcome", "snapshot_rows"}`` per month a backfill was asked for:
    written (or, in a dry run, to write) with its snapshot rows, or skipped and why."""
    summary = summary or {}
    computed, closed, present = (list(summary.get(k) or []) for k in ("months", "skipped_closed", "skipped_present"))
    requested = summary.get("months_requested") or sorted({*computed, *closed, *present})
    rows_by_month = summary.get("snapshot_rows_by_month") or {}
    reasons = {
        **{m: "skipped: closed (its final snapshot is kept)" for m in closed},
        **{m: f"skipped: has snapshots (reprocess {summary.get('reprocess', 'missing')})" for m in present},
        **{m: "computed, not written (dry run)" if summary.get("dry_run") else "written" for m in computed},
    }
    return [{"month": m, "outcome": reasons.get(m, "not computed"), "snapshot_rows": rows_by_month.get(m)} for m in requested]


def _months_span(summary: dict) -> str | None:
    """``months 2025-08 to 2025-10`` for a backfill that lists its months, else None."""
    months = [row["month"] for row in months_table(summary)] if _is_backfill(summary) else []
    if not months:
        return None
    return f"month {months[0]}" if len(months) == 1 else f"months {months[0]} to {months[-1]}"


def _md_months(summary: dict) -> list[str]:
    """A backfill's months: each one written or skipped, with its snapshot rows."""
    rows = months_table(summary) if _is_backfill(summary) else []
    if not rows:
        return []
    body = [[r["month"], _count(r["snapshot_rows"]), r["outcome"]] for r in rows]
    total = ["**total**", _count(summary.get("snapshot_rows")), ""]
    return ["## Months", "", *_table(["month", "snapshot rows", "outcome"], [*body, total]), ""]


def _term_months(summary: dict) -> list[str]:
    rows = months_table(summary) if _is_backfill(summary) else []
    if not rows:
        return []
    computed = len(summary.get("months") or [])
    text = f"{len(rows)} asked for: {computed} computed, {len(rows) - computed} skipped; {_count(summary.get('snapshot_rows'))} snapshot rows {_written(summary)}"
    lines = _labelled("months", text)
    return lines + [
        f"    {r['month']}  {r['outcome']}" + (f": {r['snapshot_rows']:,} snapshot rows" if r["snapshot_rows"] is not None else "")
        for r in rows
    ]


# --- terminal ---------------------------------------------------------------------------------


def _labelled(label: str, text: str) -> list[str]:
    """``text`` after an aligned label, wrapped to WIDTH columns under itself."""
    lead = "  " + f"{label}:".ljust(LABEL)
    return textwrap.wrap(text, WIDTH, initial_indent=lead, subsequent_indent=" " * len(lead), break_on_hyphens=False) or [lead.rstrip()]


def _term_header(summary: dict) -> list[str]:
    facts = [
        _months_span(summary) or (f"period {summary['period']}" if summary.get("period") else ""),
        f"cut-off {_instant(summary['as_of'])}" if summary.get("as_of") else "",
        f"plan {summary['plan_version']}" if summary.get("plan_version") else "",
    ]
    text = ", ".join(f for f in facts if f)
    return textwrap.wrap(_title(summary) + (f": {text}" if text else ""), WIDTH, subsequent_indent="    ")


def _term_counts(summary: dict) -> list[str]:
    mark, changes = summary.get("watermark") or {}, summary.get("changes") or {}
    lines = []
    if mark:
        lines += _labelled(
            "inputs",
            f"{_count(mark.get('purchase_count'))} purchases (newest purchaseID {_plain(mark.get('max_purchase_id'))}), "
            f"{_count(mark.get('user_count'))} users",
        )
    if "users_computed" in summary or "users_written" in summary:
        compared = f"{_count(summary.get('users_compared'))} compared, " if "users_compared" in summary else ""
        lines += _labelled("users", f"{_count(summary.get('users_computed'))} computed, {compared}{_count(summary.get('users_written'))} {_written(summary)}")
    if changes:
        lines += _labelled(
            "volume moved",
            f"full {_money(changes.get('full_volume_moved_total'))} (largest {_money(changes.get('full_volume_moved_max'))}), "
            f"personal {_money(changes.get('personal_volume_moved_total'))}",
        )
    return lines


def _term_changes(summary: dict, limit: int) -> list[str]:
    rows = _changed_keys(summary)
    if "changes" not in summary:
        return []
    if not rows:
        return _labelled("changed keys", "none")
    width = min(max(len(r["key"]) for r in rows), WIDTH - 30)
    lines = _labelled("changed keys", f"{len(rows)} key(s)")
    lines += [f"    {_first_line(r['key'], width):<{width}}  {r['users']:>12,}" for r in rows[:limit]]
    return lines + ([f"    ... and {len(rows) - limit} more key(s)"] if len(rows) > limit else [])


def _term_ranks_and_pioneers(summary: dict) -> list[str]:
    lines = []
    if "changes" in summary or "rank_history_rows" in summary:
        rises = _sorted_by_count((summary.get("changes") or {}).get("rank_rises_to"))
        text = ", ".join(f"{rank} {n:,}" for rank, n in rises) or "none"
        lines += _labelled("rank rises", f"{text} ({_count(summary.get('rank_history_rows'))} rank history rows)")
    if "new_pioneers" in summary:
        pioneers = summary.get("new_pioneers") or []
        lines += _labelled("new pioneers", f"{len(pioneers):,}" + (f" (userID {_ids(pioneers)})" if pioneers else ""))
    return lines


def _term_problems(summary: dict) -> list[str]:
    how, problems = _problems(summary)
    if not problems:
        return _labelled("quarantined", "none") if "quarantined" in summary else []
    return [line for p in problems for line in _labelled(how, _problem_text(p))]


def _term_timings(summary: dict) -> list[str]:
    stages = _stage_rows(summary)
    if not stages:
        return []
    total = sum(sec for _, sec, _, _ in stages)
    lines = _labelled("timings", f"{total:.2f} s in all")
    return lines + [
        f"    {s:<10} {sec:>9.2f} s  {_count(n):>12} rows  {_count(rate):>12} rows/s" if n is not None else f"    {s:<10} {sec:>9.2f} s"
        for s, sec, n, rate in stages
    ]


def summary_lines(summary: dict, *, keys_shown: int = 12) -> list[str]:
    """A compact terminal rendering of one run's summary, aligned, at most 100 columns wide."""
    summary = summary or {}
    lines = _term_header(summary) + _term_months(summary) + _term_counts(summary) + _term_changes(summary, keys_shown)
    lines += _term_ranks_and_pioneers(summary) + _term_problems(summary)
    lines += _labelled("validation", _verdict(summary))
    if summary.get("error"):
        lines += _labelled("error", _first_line(summary["error"], 3 * WIDTH))
    return lines + _term_timings(summary)


def failure_lines(failures: list[dict], total: int | None = None) -> list[str]:
    """Validation failures of a run, one per line (at most 100 columns), and how many were not shown."""
    total = len(failures) if total is None else total
    lines = [f"validation failures: {total:,}" + (f" (first {len(failures):,} shown)" if total > len(failures) else "")]
    return lines + [
        "  " + _first_line(f"user {f.get('user_id') if f.get('user_id') is not None else '-'}: {f.get('check_name')}: {f.get('detail')}", WIDTH - 2)
        for f in failures
    ]


# --- ledger rows --------------------------------------------------------------------------------


def run_summary(detail: dict) -> dict:
    """The summary of a ledger row (``run_detail``), with the row's own columns filled in, so that
    refused, failed and abandoned runs (no or a partial summary) still say what they were."""
    detail = detail or {}
    columns = ("run_id", "mode", "status", "period", "as_of", "plan_version", "dry_run", "verified", "error", "started_at", "finished_at")
    mark = {k: detail[k] for k in ("max_purchase_id", "purchase_count", "user_count") if detail.get(k) is not None}
    fallback = ({"watermark": mark} if mark else {}) | (
        {"users_written": detail["users_changed"]} if detail.get("users_changed") is not None else {}
    )
    own = {k: detail[k] for k in columns if detail.get(k) is not None}
    return fallback | dict(detail.get("summary") or {}) | own


def _duration(row: dict) -> float | None:
    """Seconds from a run's start to its end; None while it runs."""
    started, finished = row.get("started_at"), row.get("finished_at")
    return (finished - started).total_seconds() if started and finished else None


def runs_table(rows: list[dict], *, error_width: int = 40) -> str:
    """An aligned terminal table of runs (``recent_runs`` rows), the error's first line cut short."""
    header = ["run", "mode", "status", "period", "as of", "started", "took", "written", "verified", "error"]
    body = [
        [
            str(r.get("run_id", "-")),
            r.get("mode") or "-",
            r.get("status") or "-",
            r.get("period") or "-",
            _minute(r.get("as_of")),
            _minute(r.get("started_at")),
            _seconds(_duration(r)),
            _count(r.get("users_changed")),
            _yes_no(r.get("verified")),
            _first_line(r.get("error"), error_width),
        ]
        for r in rows
    ]
    if not body:
        return "no runs recorded"
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    right = {0, 6, 7}  # run id, duration and users written read as numbers
    fmt = [(str.rjust if i in right else str.ljust) for i in range(len(header))]
    return "\n".join("  ".join(fmt[i](row[i], widths[i]) for i in range(len(header))).rstrip() for row in [header, *body])


# --- the HTML page (nightly summary, close) -----------------------------------------------------

REPORTS_DIR = ".mlm/reports"  # where a run's page is written (relative to the working folder)


def summary_html(summary: dict) -> str:
    """One self-contained page of a run (nightly, close, backfill): its facts, the changes by
    key and the rank rises as tables and charts (matplotlib, inline SVG)."""
    from flows import html_report as hr

    summary = summary or {}
    mark = summary.get("watermark") or {}
    changes = summary.get("changes") or {}
    facts = [
        ("period", summary.get("period")), ("cut-off", summary.get("as_of")), ("mode", summary.get("mode")),
        ("plan", summary.get("plan_version")), ("run", summary.get("run_id")), ("validation", _verdict(summary)),
        ("purchases before the cut-off", _count(mark.get("purchase_count"))), ("users", _count(mark.get("user_count"))),
        ("users computed", _count(summary.get("users_computed"))), ("users with a changed value", _count(changes.get("users"))),
        (f"users {_written(summary)}", _count(summary.get("users_written"))), ("snapshot rows", _count(summary.get("snapshot_rows"))),
    ]  # fmt: skip
    sections = [("The run", hr.table(["fact", "value"], [[k, v] for k, v in facts if v not in (None, "")], numeric_from=9))]
    keys = _changed_keys(summary)
    if keys:
        figure = hr.bar_chart([r["key"] for r in keys], {"users": [r["users"] for r in keys]}, "Users changed, by owned key", log=True)
        sections.append(("Changes by key", hr.figure_svg(figure) + hr.table(["key", "users"], [[r["key"], r["users"]] for r in keys])))
    rises = _sorted_by_count(changes.get("rank_rises_to"))
    if rises:
        figure = hr.bar_chart([r for r, _ in rises], {"users": [n for _, n in rises]}, "Rank rises, by rank reached")
        sections.append(("Rank changes", hr.figure_svg(figure) + hr.table(["rank reached", "users"], rises)))
    months = months_table(summary) if _is_backfill(summary) else []
    if months:
        sections.append(("Months", hr.table(list(months[0]), [list(m.values()) for m in months])))
    how, problems = _problems(summary)
    if problems:
        sections.append(("Refused: bad input" if how == "refused" else "Quarantined rows", "".join(hr.paragraph(_problem_text(p)) for p in problems)))
    stages = _stage_rows(summary)
    if stages:
        sections.append(("Stage timings", hr.table(["stage", "seconds", "rows", "rows/s"], [[s, f"{sec:.3f}", _count(n), _count(r)] for s, sec, n, r in stages])))
    title = _title(summary)
    return hr.page(title[:1].upper() + title[1:], sections)


def write_summary_page(summary: dict, folder: str | Path = REPORTS_DIR) -> Path:
    """Write the run's page into ``folder``: ``<mode>-<period>-run<id>.html``; its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{summary.get('mode', 'run')}-{summary.get('period', '')}-run{summary.get('run_id', 0)}.html"
    path = folder / name.replace("/", "-")
    path.write_text(summary_html(summary), encoding="utf-8")
    return path

"""``lint-json --format sarif``: a run's report as a SARIF 2.1.0 log, for code scanning UIs.

Decides how the report maps onto SARIF: one run of the tool ``mlm-recompute lint-json`` with one
rule, JSN001; each finding one result of level ``error`` at its file, line and column. Paths are
URIs relative to the working directory under the base ``%SRCROOT%`` (what GitHub code scanning
expects when run from the repository root; a file outside it gets an absolute ``file:`` URI).
Columns are counted in Unicode code points as SARIF asks, not in the UTF-8 bytes ``ast`` counts.
A file that could not be read or parsed (E999) is a tool execution notification, and makes the
invocation unsuccessful, rather than a result: it says nothing about the code's correctness.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

from guard.report import CODE, PARSE_ERROR, Finding, ParseFailure, Report

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"

_RULE = {
    "id": CODE,
    "name": "LostJsonWrite",
    "shortDescription": {"text": "SQLAlchemy JSON value changed in place and never saved"},
    "fullDescription": {
        "text": "SQLAlchemy writes a JSON column only when it is assigned a new, unequal value or after "
        "flag_modified(obj, column). A change made in place (obj.col[k] = v, .update, .append, del, "
        "nested changes, or the same object assigned back) with no flag_modified after it on some path "
        "to the end of the function is silently lost at commit."
    },
    "help": {
        "text": "Call flag_modified(obj, \"column\") after the change on every path (or under a test of a "
        "flag set after every change), or assign a new object. Silence a deliberate case with # noqa: JSN001."
    },
    "defaultConfiguration": {"level": "error"},
    "properties": {"tags": ["sqlalchemy", "correctness", "data-loss"]},
}
_PARSE_NOTIFICATION = {"id": PARSE_ERROR, "shortDescription": {"text": "a file that could not be read or parsed"}}


def _version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("mlm-recompute")
    except metadata.PackageNotFoundError:
        return "0"


def _uri(path: str) -> tuple[str, str | None]:
    """(uri, base id) for a scanned path: relative to the working directory when under it."""
    absolute = Path(os.path.abspath(path))
    relative = os.path.relpath(absolute)
    if relative.startswith(".."):
        return absolute.as_uri(), None
    return quote(Path(relative).as_posix()), SRCROOT


def _location(path: str, line: int, column: int) -> dict:
    """A SARIF location: the file and the 1-based line and code-point column."""
    uri, base = _uri(path)
    artifact = {"uri": uri, **({"uriBaseId": base} if base else {})}
    region = {"startLine": max(line, 1), "startColumn": max(_code_point_column(path, line, column), 1)}
    return {"physicalLocation": {"artifactLocation": artifact, "region": region}}


@lru_cache(maxsize=256)
def _lines(path: str) -> tuple[str, ...]:
    """A file's lines as text (empty when it cannot be read again)."""
    try:
        return tuple(importlib.util.decode_source(Path(path).read_bytes()).splitlines())
    except (OSError, UnicodeDecodeError, SyntaxError):
        return ()


def _code_point_column(path: str, line: int, column: int) -> int:
    """``ast``'s 1-based UTF-8 byte column as a 1-based code-point column (equal on ASCII lines)."""
    lines = _lines(path)
    if not 0 < line <= len(lines):
        return column
    return len(lines[line - 1].encode()[: column - 1].decode(errors="ignore")) + 1


def _result(finding: Finding) -> dict:
    """One finding as a SARIF result."""
    return {
        "ruleId": finding.code,
        "ruleIndex": 0,
        "level": "error",
        "message": {"text": finding.message},
        "locations": [_location(finding.path, finding.line, finding.col)],
        "properties": {"object": finding.obj, "attribute": finding.column, "missing": finding.missing_call},
    }


def _notification(failure: ParseFailure) -> dict:
    """A file that could not be parsed, as a tool execution notification."""
    return {
        "level": "error",
        "message": {"text": failure.message},
        "descriptor": {"id": failure.code, "index": 0},
        "locations": [_location(failure.path, failure.line, failure.col)],
    }


def sarif_log(report: Report) -> dict:
    """The report as a SARIF 2.1.0 log object (``json.dumps`` it)."""
    _lines.cache_clear()  # files may have changed since an earlier report
    driver = {
        "name": "mlm-recompute lint-json",
        "version": _version(),
        "rules": [_RULE],
        "notifications": [_PARSE_NOTIFICATION],
    }
    invocation = {
        "executionSuccessful": not report.errors,
        "toolExecutionNotifications": [_notification(failure) for failure in report.errors],
    }
    run = {
        "tool": {"driver": driver},
        "invocations": [invocation],
        "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().as_uri().rstrip("/") + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": [_result(finding) for finding in report.findings],
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}

"""What a run reports: findings and parse failures, their messages, and what ``# noqa`` silences.

Decides: the text of a finding (object, column, why the change is lost, the missing
``flag_modified`` call), where it is located (at the in-place change; a change a helper hands to
a caller is reported at the helper's line, naming the call), that ``# noqa`` or ``# noqa: JSN001``
on the change's line, or on the call that handed it over, silences it, and the exit code
(2 a file did not parse, 1 a lost write, 0 clean). Output formats: ``text()`` / ``as_json()``
here, SARIF in ``guard.sarif``; the flake8 plugin yields the same findings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: the analysis modules import this one
    from guard.discovery import Module
    from guard.effects import Site
    from guard.flow import FunctionAnalysis

CODE = "JSN001"
PARSE_ERROR = "E999"
# ``# noqa`` alone, or with a list of codes (JSN001 must be among them to silence a finding).
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One lost write, located at the in-place change."""

    path: str
    line: int
    col: int
    message: str
    obj: str
    column: str
    code: str = CODE

    @property
    def missing_call(self) -> str:
        """The call that would save the change."""
        return f'flag_modified({self.obj}, "{self.column}")'

    def text(self) -> str:
        """The ruff/flake8 line: ``path:line:col: CODE message``."""
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"

    def as_json(self) -> dict:
        """The finding as a JSON object."""
        return {
            "path": self.path, "line": self.line, "column": self.col, "code": self.code,
            "message": self.message, "object": self.obj, "attribute": self.column, "missing": self.missing_call,
        }


@dataclass(frozen=True)
class ParseFailure:
    """A file that could not be read or parsed; it is reported, never skipped silently."""

    path: str
    line: int
    col: int
    message: str
    code: str = PARSE_ERROR

    def text(self) -> str:
        """The ruff/flake8 line: ``path:line:col: CODE message``."""
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"

    def as_json(self) -> dict:
        """The failure as a JSON object."""
        return {"path": self.path, "line": self.line, "column": self.col, "code": self.code, "message": self.message}


@dataclass
class Report:
    """Everything one run found."""

    findings: list[Finding]
    errors: list[ParseFailure]
    files: int = 0

    @property
    def exit_code(self) -> int:
        """2 when a file did not parse, 1 when a lost write was found, else 0."""
        return 2 if self.errors else 1 if self.findings else 0


def _message(site: Site, reason: str, assigned_back: str | None) -> str:
    """The finding's text: the object, the column, what makes the change lost, and the missing call."""
    origin = site.origin
    target = f"{origin.obj}.{origin.column}"
    through = f" through {origin.via}" if origin.via else ""
    missing = f'flag_modified({origin.obj}, "{origin.column}")'
    extras = [e for e in (origin.note, assigned_back) if e]
    tail = "".join(f"; {e}" for e in extras)
    return f"in-place change to {target}{through} is never saved: no {missing} {reason}{tail}"


def _caller_reason(site: Site, reason: str, here: str) -> str:
    """Why a change handed to a caller is lost, as said at the helper."""
    helper, path, line = site.call
    where = f"line {line}" if path == here else f"{path}:{line}"
    return f"after {helper}() is called at {where}, {reason}"


def _suppressed(line: str) -> bool:
    """Whether a source line carries ``# noqa`` or ``# noqa: JSN001``."""
    match = _NOQA.search(line)
    return bool(match) and (match.group("codes") is None or CODE in match.group("codes").upper())


def _silenced(path: str, line: int, lines: dict[str, list[str]], modules: dict[str, Module]) -> bool:
    """Whether ``path:line`` carries a noqa for JSN001 (each file split into lines once)."""
    if path not in lines:
        lines[path] = modules[path].lines if path in modules else []
    source = lines[path]
    return line <= len(source) and _suppressed(source[line - 1])


def findings_of(analyses: list[FunctionAnalysis], noqa: bool = True) -> list[Finding]:
    """One finding per lost change, at the change; noqa lines left out unless ``noqa`` is False."""
    modules = {a.fn.path: a.fn.module for a in analyses}
    lines: dict[str, list[str]] = {}
    found: dict[tuple, Finding] = {}
    for analysis in analyses:
        for site_id, reason in analysis.leaks.items():
            site = analysis.sites[site_id]
            origin = site.origin
            if site.call:
                reason = _caller_reason(site, reason, origin.path)
            message = _message(site, reason, analysis.assigned_back.get(site_id))
            place = (origin.path, origin.line, origin.col)
            if place in found:
                continue
            if noqa and _silenced(origin.path, origin.line, lines, modules):
                continue
            if noqa and site.call and _silenced(site.call[1], site.call[2], lines, modules):
                continue  # a noqa on the call that hands the change over silences it too
            found[place] = Finding(origin.path, origin.line, origin.col, message, origin.obj, origin.column)
    return sorted(found.values(), key=lambda f: (f.path, f.line, f.col))

"""``flake8 --select JSN``: lint-json's findings (JSN001), reported through flake8 and the tools that run it.

Decides how a whole-tree check fits flake8's one-file-at-a-time plugins. JSON columns and flagging
helpers are learned from every file under the paths flake8 was given, exactly as
``mlm-recompute lint-json PATHS`` learns them, once per process; each file is then told the
findings located in it, so flake8 prints the same lines, columns and messages as lint-json.

- The text flake8 checks wins over the file on disk: when they differ (an editor's unsaved buffer,
  ``flake8 --stdin-display-name PATH -``), the tree is linted again with that text in its place.
  Reading stdin, the declarations come from the working directory.
- ``# noqa`` and ``# noqa: JSN001`` silence a finding as in lint-json, also on the call that hands a
  helper's change over; ``--disable-noqa`` reports those too.
- ``--exclude`` / ``--extend-exclude`` are passed on to the scan; lint-json's own default
  excludes (virtualenvs, caches, build output) also hold, and a file the scan leaves out gets no
  finding, as from lint-json.
- ``--json-columns a,b`` (or ``json-columns`` in flake8's config) is lint-json's ``--columns``.
- A file that does not parse is flake8's own E999; the plugin is not run on it.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from importlib import metadata
from typing import ClassVar, Iterator

from guard.discovery import Module, python_files
from guard.lint import cyclic_gc_paused, lint_modules, parse_files
from guard.report import Finding


def _version() -> str:
    """The installed package's version (flake8 prints it with ``--version``)."""
    try:
        return metadata.version("mlm-recompute")
    except metadata.PackageNotFoundError:
        return "0"


def _key(path: str) -> str:
    """A path as one comparable string, however flake8 or the scan spelled it (``./a.py``, ``a.py``)."""
    return os.path.normcase(os.path.abspath(path))


@dataclass(frozen=True)
class _Settings:
    """What the plugin takes from flake8's options."""

    paths: tuple[str, ...] = (".",)
    columns: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    noqa: bool = True
    stdin_name: str | None = None  # the display name of the file read from stdin, if one is


@dataclass
class _Scan:
    """The tree as on disk, parsed and linted once: the modules and the findings located in each file."""

    modules: list[Module]
    index: dict[str, int]  # _key(path) → position in modules
    findings: dict[str, list[Finding]]  # _key(path) → its findings


def _scanned(settings: _Settings) -> _Scan:
    """Parse and lint the tree flake8 was pointed at (files that do not parse are flake8's E999)."""
    with cyclic_gc_paused():
        modules, _ = parse_files(python_files(settings.paths, settings.exclude))
        findings: dict[str, list[Finding]] = {}
        for finding in lint_modules(modules, settings.columns, settings.noqa):
            findings.setdefault(_key(finding.path), []).append(finding)
    return _Scan(modules, {_key(m.path): i for i, m in enumerate(modules)}, findings)


def _exclude_patterns(options) -> tuple[str, ...]:
    """flake8's exclude patterns, each absolute one also relative to the working directory (as the scan sees paths)."""
    patterns: list[str] = []
    for pattern in [*(options.exclude or ()), *(getattr(options, "extend_exclude", None) or ())]:
        patterns.append(pattern)
        if os.path.isabs(pattern):
            relative = os.path.relpath(pattern)
            if not relative.startswith(".."):
                patterns.append(relative)
    return tuple(patterns)


class JsonWriteChecker:
    """The flake8 plugin: yields JSN001 for each SQLAlchemy JSON value changed in place and never saved."""

    name = "mlm-recompute-lint-json"
    version = _version()

    settings: ClassVar[_Settings] = _Settings()
    scan: ClassVar[_Scan | None] = None  # per process; flake8's worker processes each build their own

    def __init__(self, tree: ast.Module, filename: str, lines: list[str]):
        self.tree, self.filename, self.lines = tree, filename, lines

    @classmethod
    def add_options(cls, manager) -> None:
        """``--json-columns``: more attribute names to treat as JSON columns."""
        manager.add_option(
            "--json-columns", default="", parse_from_config=True, comma_separated_list=True,
            help="JSN: also treat these attribute names as JSON columns (lint-json's --columns)",
        )

    @classmethod
    def parse_options(cls, options) -> None:
        """Take the paths, exclusions, columns and noqa setting from flake8's options."""
        given = [path for path in options.filenames if path != "-"]
        reads_stdin = "-" in options.filenames
        cls.settings = _Settings(
            paths=tuple(given) or (".",),
            columns=tuple(getattr(options, "json_columns", None) or ()),
            exclude=_exclude_patterns(options),
            noqa=not options.disable_noqa,
            stdin_name=(options.stdin_display_name or "stdin") if reads_stdin else None,
        )
        cls.scan = None

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        """The findings in this file as flake8 wants them: line, 0-based column, ``CODE message``."""
        for finding in self._findings():
            yield finding.line, finding.col - 1, f"{finding.code} {finding.message}", type(self)

    def _findings(self) -> list[Finding]:
        """This file's findings: from the scan when flake8's text is the file on disk, else linted anew."""
        cls = type(self)
        if cls.scan is None:
            cls.scan = _scanned(cls.settings)
        scan, key, text = cls.scan, _key(self.filename), "".join(self.lines)
        position = scan.index.get(key)
        if position is not None and scan.modules[position].text == text:
            return scan.findings.get(key, [])
        if position is None and self.filename != cls.settings.stdin_name:
            return []  # a file the scan leaves out (lint-json's default excludes): no finding there either
        modules = list(scan.modules)
        module = Module(self.filename if position is None else scan.modules[position].path, self.tree, text)
        if position is None:
            modules.append(module)
        else:
            modules[position] = module
        with cyclic_gc_paused():
            return [f for f in lint_modules(modules, cls.settings.columns, cls.settings.noqa) if _key(f.path) == key]

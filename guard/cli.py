"""``mlm-recompute lint-json PATH...``: report SQLAlchemy JSON values changed in place and never saved.

Exit codes: 0 nothing found; 1 a lost write found; 2 usage error, or a file that does not parse.
"""

from __future__ import annotations

import argparse
import json
import sys

from guard.json_mutations import lint_paths
from guard.sarif import sarif_log

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2


def _names(text: str) -> list[str]:
    """A comma-separated list as names, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The subcommand's arguments, added to a parser (``mlm-recompute``'s subparser or a standalone one)."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="Python files or folders to check")
    parser.add_argument(
        "--columns", type=_names, default=[], metavar="A,B",
        help="also treat these attribute names as JSON columns (models outside the checked paths)",
    )
    parser.add_argument(
        "--format", choices=["text", "json", "sarif"], default="text",
        help="output format: text (path:line:col: CODE message), json, or sarif (SARIF 2.1.0 for code scanning); default text",
    )
    parser.add_argument(
        "--exclude", type=_names, default=[], metavar="GLOB,...",
        help="leave out files and folders matching these patterns (a named file is always checked)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Lint the parsed arguments' paths and print the findings; the exit code."""
    try:
        report = lint_paths(args.paths, columns=args.columns, exclude=args.exclude)
    except FileNotFoundError as error:
        print(f"mlm-recompute lint-json: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    problems = [*report.errors, *report.findings]
    if args.format == "json":
        print(json.dumps([p.as_json() for p in problems], indent=2))
    elif args.format == "sarif":
        print(json.dumps(sarif_log(report), indent=2))
    else:
        for problem in problems:
            print(problem.text())
        if report.findings:
            print(f"Found {len(report.findings)} lost JSON write(s) in {report.files} file(s).", file=sys.stderr)
    return report.exit_code


def main(argv: list[str] | None = None) -> int:
    """Run as a standalone command; argparse's usage errors become exit code 2, never an exception."""
    parser = add_arguments(argparse.ArgumentParser(prog="mlm-recompute lint-json", description=__doc__.splitlines()[0]))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

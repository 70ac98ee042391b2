"""``mlm-recompute plan check [FILE]`` and ``mlm-recompute plan schema``: the plan file, offline.

``check`` validates a plan file as a run would load it (exit 0, one line naming the version and
ranks; exit 2, one line naming the file, each offending field's path and its value). ``schema``
writes the plan file's JSON Schema to stdout, for editors that check TOML as it is typed
(``plans/plan.schema.json`` is that output, kept equal to it by a test).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_USAGE = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    commands = parser.add_subparsers(dest="plan_command", required=True)
    check = commands.add_parser("check", help="validate a plan file (default: MLM_PLAN, else plans/default.toml)")
    check.add_argument("file", nargs="?", type=Path, help="the plan file (TOML)")
    commands.add_parser("schema", help="write the plan file's JSON Schema to stdout")
    return parser


def schema_text() -> str:
    """The JSON Schema of plan files, as ``plan schema`` prints it (and plans/plan.schema.json holds)."""
    from transforms.plan import plan_json_schema

    return json.dumps(plan_json_schema(), indent=2) + "\n"


def run(args: argparse.Namespace) -> int:
    if args.plan_command == "schema":
        sys.stdout.write(schema_text())
        return EXIT_OK
    from flows.config import Settings, SettingsError, load_plan
    from transforms.plan import PlanError

    try:
        path = args.file or Settings.from_env().plan_path
        plan = load_plan(path)
    except (PlanError, SettingsError) as error:
        print(f"mlm-recompute: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{path}: plan {plan.version} is valid: {len(plan.ranks)} ranks ({', '.join(plan.rank_names)})")
    return EXIT_OK

"""A run's scratch folder: frames handed from one Prefect task to the next as Parquet files, so
tasks pass paths (small values), not frames, and a retried task starts from its inputs on disk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from transforms.problems import Problem
from transforms.recompute import Inputs, Recomputed

_INPUT_FRAMES = ("users", "monthly_volumes", "pioneer_candidates", "purchase_problems")
_RESULT_FRAMES = ("state", "documents", "rank_changes")


@dataclass(frozen=True)
class Workspace:
    folder: Path

    def save_inputs(self, inputs: Inputs) -> None:
        for name in _INPUT_FRAMES:
            getattr(inputs, name).write_parquet(self.folder / f"inputs_{name}.parquet")

    def inputs(self) -> Inputs:
        return Inputs(*(pl.read_parquet(self.folder / f"inputs_{name}.parquet") for name in _INPUT_FRAMES))

    def save_result(self, result: Recomputed, tag: str = "result") -> None:
        for name in _RESULT_FRAMES:
            getattr(result, name).write_parquet(self.folder / f"{tag}_{name}.parquet")
        meta = {
            "period": result.period,
            "as_of": result.as_of.isoformat(),
            "problems": [p.as_dict() for p in result.problems],
            "quarantined_user_ids": list(result.quarantined_user_ids),
            "quarantined_purchase_ids": list(result.quarantined_purchase_ids),
        }
        (self.folder / f"{tag}_meta.json").write_text(json.dumps(meta))

    def result(self, tag: str = "result") -> Recomputed:
        meta = json.loads((self.folder / f"{tag}_meta.json").read_text())
        frames = {name: pl.read_parquet(self.folder / f"{tag}_{name}.parquet") for name in _RESULT_FRAMES}
        return Recomputed(
            period=meta["period"],
            as_of=datetime.fromisoformat(meta["as_of"]),
            problems=tuple(Problem(p["kind"], tuple(p["ids"]), p["detail"], tuple(p["detached_ids"])) for p in meta["problems"]),
            quarantined_user_ids=tuple(meta["quarantined_user_ids"]),
            quarantined_purchase_ids=tuple(meta["quarantined_purchase_ids"]),
            **frames,
        )

"""A run's scratch folder: frames handed from one Prefect task to the next as Parquet files, so
tasks pass paths (small values), not frames, and a retried task starts from its inputs on disk."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from transforms.documents import Provenance
from transforms.problems import Problem
from transforms.recompute import Inputs, Recomputed

_INPUT_FRAMES = ("users", "monthly_volumes", "pioneer_candidates", "purchase_problems")
# The documents are not saved: the write task makes them from the state and the branches, a
# batch at a time, as the whole frame of every user's JSON text would not fit at 10M users.
_RESULT_FRAMES = ("state", "branches", "rank_changes")


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
            "provenance": {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(result.provenance).items()},
        }
        (self.folder / f"{tag}_meta.json").write_text(json.dumps(meta))
        # The plan the documents are made under, as the same object (tasks of one run, one machine).
        (self.folder / f"{tag}_plan.pickle").write_bytes(pickle.dumps(result.plan))

    def result(self, tag: str = "result") -> Recomputed:
        meta = json.loads((self.folder / f"{tag}_meta.json").read_text())
        frames = {name: pl.read_parquet(self.folder / f"{tag}_{name}.parquet") for name in _RESULT_FRAMES}
        provenance = meta["provenance"]
        return Recomputed(
            period=meta["period"],
            as_of=datetime.fromisoformat(meta["as_of"]),
            plan=pickle.loads((self.folder / f"{tag}_plan.pickle").read_bytes()),
            provenance=Provenance(
                run_id=provenance["run_id"],
                plan_version=provenance["plan_version"],
                as_of=datetime.fromisoformat(provenance["as_of"]),
                calculated_at=datetime.fromisoformat(provenance["calculated_at"]),
            ),
            problems=tuple(Problem(p["kind"], tuple(p["ids"]), p["detail"], tuple(p["detached_ids"])) for p in meta["problems"]),
            quarantined_user_ids=tuple(meta["quarantined_user_ids"]),
            quarantined_purchase_ids=tuple(meta["quarantined_purchase_ids"]),
            **frames,
        )

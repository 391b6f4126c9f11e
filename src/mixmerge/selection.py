"""Pick the best of several candidate models (a hyperparameter sweep, the heuristic mix ratios).

Used by `mixmerge select`, the merge recipes (which model a group contributes) and the report
(which model a table row shows); it sits below the stages and reads score files only.

The choice is a small JSON file naming the selected model id; downstream rules read it and use
that model's directory in place, so no weights are copied.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from mixmerge.catalog import paper_benchmarks, paper_groups
from mixmerge.io import read_json, write_json

log = logging.getLogger(__name__)

COLUMNS = paper_benchmarks()
GROUPS = paper_groups()

CRITERIA = ("AVG", *GROUPS)


def criterion_value(scores: dict[str, float], criterion: str) -> float:
    """The number a candidate is ranked by (higher is better).

    Group averages use the benchmarks present; every candidate of one selection is scored on
    the same configured set, so they stay comparable.
    """
    if criterion in COLUMNS:
        if criterion not in scores:
            raise ValueError(f"selection criterion {criterion!r} has no score")
        return scores[criterion]
    group_avgs = {
        title: mean(scores[b] for b in members if b in scores)
        for title, members in GROUPS.items()
        if any(b in scores for b in members)
    }
    if criterion == "AVG":
        if not group_avgs:
            raise ValueError("no scores to rank candidates by")
        return mean(group_avgs.values())
    if criterion not in group_avgs:
        raise ValueError(f"selection criterion {criterion!r} has no benchmark scored")
    return group_avgs[criterion]


def load_model_scores(scores_root: Path, model_id: str) -> dict[str, float]:
    folder = scores_root / model_id
    scores = {p.stem: float(read_json(p)["score"]) for p in sorted(folder.glob("*.json"))}
    if not scores:
        raise FileNotFoundError(f"no score files for {model_id} under {scores_root}")
    return scores


def training_facts(models_root: Path, model_id: str) -> dict[str, Any]:
    """What a candidate was trained with (its mixmerge_train.json): pairs, beta, learning rate."""
    path = models_root / model_id / "mixmerge_train.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_id}: no training summary {path}")
    summary = read_json(path)
    hyper = summary.get("hyperparameters") or {}
    facts: dict[str, Any] = {
        "pairs": summary.get("pairs"),
        "beta": hyper.get("beta"),
        "learning_rate": hyper.get("learning_rate"),
    }
    # a data mixture: the caps its build applied (written beside the pairs, <stem>.mix.json)
    for data in summary.get("data") or []:
        stats = Path(data).with_suffix(".mix.json")
        if stats.is_file():
            mix = read_json(stats)
            params = mix.get("parameters") or {}
            facts["mix"] = {
                "strategy": mix.get("strategy"),
                "budget": params.get("budget"),
                "pool_size": params.get("pool_size"),
                "pool_pairs": (mix.get("pool") or {}).get("pairs"),
                "mode": params.get("mode"),
            }
    return facts


def select_best(
    scores_root: Path,
    candidates: list[str],
    criterion: str,
    out: Path,
    models_root: Path | None = None,
) -> dict[str, Any]:
    """Write the selection file: the best candidate, every candidate's criterion value and, with
    `models_root`, what each was trained with (the report's fairness note reads it)."""
    if criterion not in CRITERIA and criterion not in COLUMNS:
        raise ValueError(
            f"unknown selection criterion {criterion!r} (use one of {', '.join(CRITERIA)} or a benchmark id)"
        )
    if len(candidates) == 1:
        # One candidate is the pick whatever it scores: the workflow does not evaluate a model
        # only to choose it from one, and the file never depends on whether it was evaluated yet.
        values: dict[str, float | None] = {candidates[0]: None}
    else:
        values = {
            c: criterion_value(load_model_scores(scores_root, c), criterion) for c in candidates
        }
    best = max(candidates, key=lambda c: (values[c] or 0.0, -candidates.index(c)))  # ties: first
    record: dict[str, Any] = {"selected": best, "criterion": criterion, "scores": values}
    if models_root is not None:
        record["trained"] = {c: training_facts(models_root, c) for c in candidates}
    write_json(out, record)
    return record


def selected_model(selection_file: Path) -> str:
    return read_json(selection_file)["selected"]


@dataclass
class Selections:
    """Selection files (`selection/dpo/<group>.json`, `selection/mix/<strategy>.json`), if any."""

    chosen: dict[str, str] = field(default_factory=dict)  # "dpo/<group>" | "mix/<strategy>" -> id
    # the same keys -> what each candidate was trained with ({id: {pairs, beta, learning_rate}})
    trained: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, selection_dir: Path | None) -> Selections:
        chosen: dict[str, str] = {}
        trained: dict[str, dict[str, dict[str, Any]]] = {}
        if selection_dir is None or not selection_dir.is_dir():
            return cls(chosen)
        for path in sorted(selection_dir.rglob("*.json")):
            key = path.relative_to(selection_dir).with_suffix("").as_posix()
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                selected = record["selected"]
            except (ValueError, KeyError, TypeError, OSError):
                log.warning("skipping %s: not a selection file", path)
                continue
            if isinstance(selected, str) and selected:
                chosen[key] = selected
                if isinstance(record.get("trained"), dict):
                    trained[key] = record["trained"]
        return cls(chosen, trained)

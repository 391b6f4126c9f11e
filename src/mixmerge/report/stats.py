"""How sure each number is: bootstrap intervals per benchmark and on the 3H averages, and
paired comparisons between models.

Every benchmark score is a ratio over its items: 100 x (sum of good) / (sum of counted), where an
item that a judge could not rate counts for nothing (it is left out of the score). MT-Bench is
the mean of the parsed turn ratings, on its 1-10 scale, and a question is one item holding both
its turns, so the two turns are resampled together. `units` reads these per-item pairs from a
benchmark's `samples.jsonl` (what `mixmerge evaluate` writes beside each score file).

The bootstrap resamples items with replacement, `bootstrap` times (1,000 by default). The draws
of a benchmark come from a generator seeded by the report seed and the benchmark's name, and are
taken over the items of that benchmark in one canonical order (sorted item keys). So every model
of a run gets the same draws, and the difference of two models' replicates is a paired
bootstrap replicate: all models answer the same items. The averages are recomputed on each
replicate with the paper's rounding rules (each benchmark rounded half-up to 2 decimals, group
means of those, rounded, AVG the mean of the rounded group means).

Intervals are percentile intervals (2.5 and 97.5 percentiles at the default level). A paired
difference's p-value is two-sided, from the normal approximation with the bootstrap standard
error (|delta| / se); it is 1 for a difference that is 0 on every replicate. A score without
samples has no interval.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixmerge.catalog import Benchmark
from mixmerge.catalog import benchmark as catalog_benchmark
from mixmerge.report.scores import AVG, COLUMNS, GROUPS, TITLES

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = 1000
DEFAULT_ALPHA = 0.05

Unit = tuple[str, float, float]  # (item key, good, counted)


def _key(*parts: Any) -> str:
    return json.dumps(parts, ensure_ascii=False, default=str)


def _judged(
    bench: Benchmark, rows: Iterable[Mapping[str, Any]], is_good: Callable[[Mapping], bool]
) -> list[Unit]:
    """A judged benchmark's items, keyed by its `id` field; an unparsed verdict counts for
    nothing."""
    key = bench.options["id"]
    return [
        (_key(r.get(key)), float(is_good(r)), 1.0) if r.get("parsed") else (_key(r.get(key)), 0.0, 0.0)
        for r in rows
    ]


def units(benchmark: str, samples: Iterable[Mapping[str, Any]]) -> list[Unit]:
    """The resampling units of one benchmark's per-item records (see the module docstring); how
    an item is read follows the benchmark's runner in the catalog."""
    bench = catalog_benchmark(benchmark)
    rows = list(samples)
    if bench.runner == "mt_bench":
        questions: dict[str, list[float]] = {}
        for row in rows:
            ratings = questions.setdefault(_key(row.get("question_id")), [0.0, 0.0])
            if row.get("parsed") and float(row.get("score", -1)) != -1:
                ratings[0] += float(row["score"])
                ratings[1] += 1
        return [(k, good, counted) for k, (good, counted) in questions.items()]
    if bench.runner == "judged":  # the main set; a second one (OR-Bench's toxic) is a sub-score
        main = bench.options.get("subset")
        rows = [r for r in rows if main is None or r.get("subset", main) == main]
        return _judged(bench, rows, lambda r: r.get("verdict") in bench.good_verdicts(r))
    if bench.runner == "evalplus":
        return [(_key(r.get("task_id")), float(bool(r.get("correct"))), 1.0) for r in rows]
    # lm-eval: one record per document under the scored filter; its metric value (0/1, or a
    # share such as TruthfulQA MC2's)
    return [
        (_key(r.get("task"), r.get("doc_id")), _lm_eval_value(r), 1.0)
        for r in rows
        if r.get("correct") is not None
    ]


def _lm_eval_value(row: Mapping[str, Any]) -> float:
    value = row.get("value")
    return float(bool(row.get("correct"))) if value is None else float(value)


# sub-scores of a score record that the bootstrap gives intervals for: record key -> its units
def subscore_units(benchmark: str, samples: Iterable[Mapping[str, Any]]) -> dict[str, list[Unit]]:
    """Units of the sub-scores: evalplus's base-tests pass rate (the same tasks as the score, so
    the same resampled items) and OR-Bench's toxic-set rejection rate (its own prompts)."""
    bench = catalog_benchmark(benchmark)
    rows = list(samples)
    if bench.runner == "evalplus":
        return {
            "base_score": [
                (_key(r.get("task_id")), float(r.get("base_status") == "pass"), 1.0) for r in rows
            ]
        }
    if benchmark == "or_bench":
        toxic = [r for r in rows if r.get("subset") == "toxic"]
        if toxic:  # good = refused: any verdict but the accepting one
            refused = _judged(bench, toxic, lambda r: r.get("verdict") not in bench.good_verdicts(r))
            return {"toxic_rejection_rate": refused}
    return {}


def score_of(benchmark: str, found: Sequence[Unit]) -> float | None:
    """The score the units give without resampling: equal to the score file's (a check that the
    samples describe the score the bootstrap resamples)."""
    counted = sum(c for _, _, c in found)
    if not counted:
        return None
    return catalog_benchmark(benchmark).multiplier * sum(g for _, g, _ in found) / counted


def _samples(scores_dir: Path, model_id: str, benchmark: str) -> list[dict[str, Any]] | None:
    path = scores_dir / model_id / f"{benchmark}.samples.jsonl"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_units(scores_dir: Path, model_id: str, benchmark: str) -> list[Unit] | None:
    """The units of `<scores_dir>/<model_id>/<benchmark>.samples.jsonl`; None without the file."""
    rows = _samples(scores_dir, model_id, benchmark)
    found = units(benchmark, rows) if rows is not None else []
    return found if any(counted for _, _, counted in found) else None


def _round2(values: np.ndarray) -> np.ndarray:
    """Half-up rounding to 2 decimals of the number as written, as `scores.round2` (the inner
    round drops binary noise: 78.595 is 78.59499... in binary but rounds up, as in the table)."""
    return np.floor(np.round(values * 100, 6) + 0.5) / 100


def _generator(seed: int, benchmark: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{int(seed)}:{benchmark}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    se: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class Comparison:
    delta: float  # a - b, on the printed numbers
    interval: Interval
    p: float


class Bootstrap:
    """Replicates of every benchmark and average of every model with samples (columns keyed by
    their table titles)."""

    def __init__(
        self,
        model_units: Mapping[str, Mapping[str, Sequence[Unit]]],
        *,
        bootstrap: int = DEFAULT_BOOTSTRAP,
        alpha: float = DEFAULT_ALPHA,
        seed: int = 0,
    ) -> None:
        if bootstrap < 2:
            raise ValueError(f"report.bootstrap must be >= 2, got {bootstrap}")
        if not 0 < alpha < 1:
            raise ValueError(f"report.alpha must be between 0 and 1, got {alpha}")
        self.bootstrap, self.alpha, self.seed = int(bootstrap), float(alpha), int(seed)
        # column title -> model -> replicates (unrounded benchmark values)
        self.replicates: dict[str, dict[str, np.ndarray]] = {}
        for bench, title in TITLES.items():
            per_model = {m: u[bench] for m, u in model_units.items() if u.get(bench)}
            if per_model:
                self.replicates[title] = self._resample(bench, per_model)
        # sub-scores ("<benchmark>:<record key>"): drawn like their benchmark (same seed)
        for key in sorted({k for u in model_units.values() for k in u if ":" in k}):
            per_model = {m: u[key] for m, u in model_units.items() if u.get(key)}
            self.replicates[key] = self._resample(key.split(":")[0], per_model)
        self._averages()

    def _resample(self, bench: str, per_model: Mapping[str, Sequence[Unit]]) -> dict[str, np.ndarray]:
        keys = sorted({k for us in per_model.values() for k, _, _ in us})
        index = {k: i for i, k in enumerate(keys)}
        n = len(keys)
        good = np.zeros((n, len(per_model)))
        counted = np.zeros((n, len(per_model)))
        for j, us in enumerate(per_model.values()):
            for k, g, c in us:  # a repeated key (should not happen) adds up, as in the score
                good[index[k], j] += g
                counted[index[k], j] += c
        rng = _generator(self.seed, bench)
        # how often each item is drawn in each replicate: the same for every model (paired)
        weights = np.stack(
            [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(self.bootstrap)]
        ).astype(float)
        scale = catalog_benchmark(bench).multiplier
        with np.errstate(invalid="ignore", divide="ignore"):
            values = scale * (weights @ good) / (weights @ counted)
        return {m: values[:, j] for j, m in enumerate(per_model)}

    def _averages(self) -> None:
        rounded = {t: {m: _round2(v) for m, v in reps.items()} for t, reps in self.replicates.items()}
        groups: dict[str, dict[str, np.ndarray]] = {}
        for group, members in GROUPS.items():
            titles = [COLUMNS[b] for b in members]
            models = set.intersection(*(set(rounded.get(t, {})) for t in titles))
            groups[group] = {
                m: _round2(np.mean([rounded[t][m] for t in titles], axis=0)) for m in models
            }
            self.replicates[group] = groups[group]
        models = set.intersection(*(set(g) for g in groups.values()))
        self.replicates[AVG] = {
            m: _round2(np.mean([g[m] for g in groups.values()], axis=0)) for m in models
        }

    def _bounds(self, values: np.ndarray) -> tuple[float, float]:
        low, high = np.nanpercentile(values, [50 * self.alpha, 100 - 50 * self.alpha])
        return float(low), float(high)

    def interval(self, column: str, model: str) -> Interval | None:
        values = self.replicates.get(column, {}).get(model)
        if values is None or np.isnan(values).all():
            return None
        low, high = self._bounds(values)
        return Interval(low, high, float(np.nanstd(values, ddof=1)))

    def compare(self, column: str, a: str, b: str, delta: float) -> Comparison | None:
        """a - b on `column`: `delta` (the printed difference), its paired interval and p."""
        reps = self.replicates.get(column, {})
        if a not in reps or b not in reps:
            return None
        diff = reps[a] - reps[b]
        low, high = self._bounds(diff)
        se = float(np.nanstd(diff, ddof=1))
        return Comparison(delta, Interval(low, high, se), p_value(delta, se))

    def differs(self, column: str, a: str, b: str, delta: float) -> bool | None:
        """Whether a and b differ on `column` at the configured level (None: not known)."""
        found = self.compare(column, a, b, delta)
        return None if found is None else found.p < self.alpha


def p_value(delta: float, se: float) -> float:
    """Two-sided p of a difference `delta` with bootstrap standard error `se` (normal)."""
    if se == 0 or math.isnan(se):
        return 1.0 if delta == 0 else 0.0
    return math.erfc(abs(delta) / se / math.sqrt(2))


def load_bootstrap(
    scores_dir: Path,
    models: Iterable[str],
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> Bootstrap:
    """The bootstrap of every listed model's benchmarks that have samples beside their scores."""
    model_units: dict[str, dict[str, list[Unit]]] = {}
    for model in models:
        found: dict[str, list[Unit]] = {}
        for bench in TITLES:
            rows = _samples(scores_dir, model, bench)
            if rows is None:
                continue
            found[bench] = units(bench, rows)
            for name, sub in subscore_units(bench, rows).items():
                found[f"{bench}:{name}"] = sub
        model_units[model] = {k: u for k, u in found.items() if any(c for _, _, c in u)}
    return Bootstrap(model_units, bootstrap=bootstrap, alpha=alpha, seed=seed)


def intervals_csv(
    records: Mapping[str, Mapping[str, Mapping[str, Any]]], stats: Bootstrap
) -> str:
    """Every score file's interval and standard error, and its sub-scores' (one line each):
    model, benchmark, score (the record's key), value, low, high, se (empty: no samples), and
    lm-eval's own standard error where it reported one."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "benchmark", "score", "value", "low", "high", "se", "lm_eval_stderr"])
    for model in sorted(records):
        for bench in [b for b in TITLES if b in records[model]]:
            record = records[model][bench]
            parts = [("score", TITLES[bench])] + [
                (name, f"{bench}:{name}") for name in ("base_score", "toxic_rejection_rate")
                if record.get(name) is not None
            ]  # fmt: skip
            for name, column in parts:
                interval = stats.interval(column, model)
                bounds = (
                    ["", "", ""]
                    if interval is None
                    else [f"{interval.low:.4f}", f"{interval.high:.4f}", f"{interval.se:.4f}"]
                )
                stderr = record.get("stderr") if name == "score" else None
                lm_eval = "" if stderr is None else f"{float(stderr):.4f}"
                writer.writerow([model, bench, name, f"{float(record[name]):.4f}", *bounds, lm_eval])
    return buffer.getvalue()

"""HaluEval-Wild's hook on the judged runner (evaluate/tasks/halueval_wild.yaml): the query types.

HaluEval-Wild: hallucination on 500 challenging real-user queries, judged against references.

Data: HaluEval_Wild_6types.json (HaluEval-Wild/HaluEval-Wild), a JSON array of
{id, query, query_type, ref_answer}: 600 queries, 100 per type. The benchmark is the 500 queries of
the five types below; "other types" is dropped, as the HaluEval-Wild authors do. query_type values
are normalised (case, runs of spaces) before matching. Each query is sent as one user turn; the
judge (mixmerge/judge/prompts/halueval_wild.yaml) sees the query, the reference answer and the
response and answers [[hallucination]] or [[no_hallucination]].
Score = 100 - hallucination rate (% of parsed verdicts), also per query type.

bench_cfg keys (config `evaluate.benchmarks.halueval_wild`):
    data_files  path or pinned URL of HaluEval_Wild_6types.json (or {data: ...})
    sha256      expected sha256 of that file (or {data: ...}); checked when set
    limit       keep the first N queries (after dropping "other types")   default null (all 500)
    generation  overrides of evaluate.generation                          default {}
    judge       overrides of evaluate.judge                               default {}
"""

from __future__ import annotations

from typing import Any

from mixmerge.catalog import Benchmark
from mixmerge.evaluate.data_files import benchmark_files, read_json_or_jsonl
from mixmerge.evaluate.registry import EvalContext

QUERY_TYPES = (
    "out-of-scope information",
    "complex reasoning",
    "inappropriate content",
    "beyond-modality interaction",
    "confused / erroneous queries",
)
DROPPED_TYPES = ("other types",)


def normalize_type(value: Any) -> str:
    """ " Inappropriate  content " -> "inappropriate content" (upstream spacing is uneven)."""
    return " ".join(str(value).split()).lower()


def load_rows(
    bench_cfg: dict[str, Any], bench: Benchmark | None = None
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The benchmark's rows ({id, query, query_type (normalised), ref_answer}) and file hashes."""
    cfg = dict(bench_cfg)
    if isinstance(cfg.get("sha256"), str):
        cfg["sha256"] = {"data": cfg["sha256"]}
    paths, sums = benchmark_files(cfg, "halueval_wild", ("data",))
    rows = []
    for i, row in enumerate(read_json_or_jsonl(paths["data"])):
        missing = {"query", "query_type", "ref_answer"} - set(row)
        if missing:
            raise ValueError(f"halueval_wild: item {i} lacks {', '.join(sorted(missing))}")
        kind = normalize_type(row["query_type"])
        if kind in DROPPED_TYPES:
            continue
        if kind not in QUERY_TYPES:
            raise ValueError(
                f"halueval_wild: item {i} has unknown query_type {row['query_type']!r} "
                f"(known: {', '.join(QUERY_TYPES + DROPPED_TYPES)})"
            )
        rows.append({**row, "id": row.get("id", str(i)), "query_type": kind})
    return rows, sums


def extend(ctx: EvalContext, record: dict[str, Any]) -> dict[str, Any]:
    """The hallucination rate beside its complement, overall and per query type."""
    def rate(score: float | None) -> float | None:
        return None if score is None else 100.0 - score

    for part in record["per_type"].values():
        part["hallucination_rate"] = rate(part["score"])
    return {**record, "hallucination_rate": rate(record["score"])}

"""HaluEval-Wild: hallucination on 500 challenging real-user queries, judged against references.

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

import logging
from collections import defaultdict
from typing import Any

from mixmerge.evaluate.judged import answer_and_judge
from mixmerge.evaluate.registry import EvalContext
from mixmerge.judge import load_prompt, verdict_summary
from mixmerge.judge.data import benchmark_files, read_json_or_jsonl

log = logging.getLogger(__name__)

QUERY_TYPES = (
    "out-of-scope information",
    "complex reasoning",
    "inappropriate content",
    "beyond-modality interaction",
    "confused / erroneous queries",
)
DROPPED_TYPES = ("other types",)
HALLUCINATION = "hallucination"


def normalize_type(value: Any) -> str:
    """ " Inappropriate  content " -> "inappropriate content" (upstream spacing is uneven)."""
    return " ".join(str(value).split()).lower()


def load_halueval_wild(bench_cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
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
    limit = bench_cfg.get("limit")
    if limit is not None:
        rows = rows[: int(limit)]
    return rows, sums


def halueval_wild(ctx: EvalContext) -> dict[str, Any]:
    rows, sums = load_halueval_wild(ctx.bench_cfg)
    if not rows:
        raise ValueError("halueval_wild: no queries to evaluate")
    template = load_prompt("halueval_wild")
    responses, verdicts, info = answer_and_judge(
        ctx,
        [r["query"] for r in rows],
        template,
        [{"query": r["query"], "ref_answer": r["ref_answer"]} for r in rows],
    )

    per_type: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "parsed": 0, "halluc": 0})
    for row, resp, v in zip(rows, responses, verdicts, strict=True):
        stats = per_type[row["query_type"]]
        stats["n"] += 1
        stats["parsed"] += int(v.parsed)
        stats["halluc"] += int(v.parsed and v.label == HALLUCINATION)
        ctx.samples.append(
            {
                "id": row["id"],
                "query_type": row["query_type"],
                "query": row["query"],
                "response": resp,
                "verdict": v.label,
                "parsed": v.parsed,
                "judge_raw": v.raw,
            }
        )
    summary = verdict_summary(verdicts, template.parser, "halueval_wild")
    n_parsed = summary["n_parsed"]
    rate = 100.0 * summary["counts"][HALLUCINATION] / n_parsed if n_parsed else None
    return {
        "benchmark": ctx.benchmark,
        "score": None if rate is None else 100.0 - rate,
        "n": len(rows),
        "metric": "no_hallucination_rate",  # 100 - % hallucinated responses
        "hallucination_rate": rate,
        "per_type": {
            kind: {
                "n": s["n"],
                "n_parsed": s["parsed"],
                "hallucination_rate": 100.0 * s["halluc"] / s["parsed"] if s["parsed"] else None,
                "score": 100.0 - 100.0 * s["halluc"] / s["parsed"] if s["parsed"] else None,
            }
            for kind, s in sorted(per_type.items())
        },
        **summary,
        **info,
        **template.meta(),
        "data_sha256": sums,
    }

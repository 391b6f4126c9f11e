"""Shared helpers of the mixture tests: the groups and fixture pair files."""

from __future__ import annotations

from pathlib import Path

from mixmerge.io import write_jsonl

GROUPS = {
    "helpfulness": ["helpsteer", "py_dpo", "distilabel_orca", "distilabel_capybara"],
    "harmlessness": ["ultrasafety"],
    "honesty": ["truthy_dpo", "grath"],
    "helpful_honest": ["ultrafeedback"],
    "helpful_harmless": ["pku_saferlhf", "nectar"],
}


def make_pairs(dataset: str, group: str, n: int) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"{dataset} question {i}?"}],
            "chosen": f"{dataset} good answer {i}.",
            "rejected": f"{dataset} bad {i}",
            "source": dataset,
            "dimension": group,
        }
        for i in range(n)
    ]


def write_pair_files(root: Path, sizes: dict[str, int]) -> dict[str, Path]:
    """dataset -> pairs JSONL with sizes[dataset] pairs (datasets in GROUPS order)."""
    group_of = {d: g for g, names in GROUPS.items() for d in names}
    files = {}
    for dataset, n in sizes.items():
        path = root / f"{dataset}.jsonl"
        write_jsonl(path, make_pairs(dataset, group_of[dataset], n))
        files[dataset] = path
    return files

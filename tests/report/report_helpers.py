"""Fake runs for the report tests (helpers): score files, selection files and tiny safetensors models."""

from __future__ import annotations

import random
from pathlib import Path

from mixmerge.io import write_json

BENCHMARKS = [
    "math",
    "gsm8k",
    "arc_easy",
    "arc_challenge",
    "mmlu",
    "mbpp_plus",
    "humaneval_plus",
    "mt_bench",
    "halueval_wild",
    "salad_bench",
    "or_bench",
]
GROUPS = ["helpfulness", "honesty", "harmlessness", "helpful_honest", "helpful_harmless"]


def write_scores(scores_dir: Path, model: str, scores: dict[str, float]) -> None:
    for bench, score in scores.items():
        write_json(
            scores_dir / model / f"{bench}.json",
            {"benchmark": bench, "score": score, "n": 1, "metric": "m"},
        )


def random_scores(rng: random.Random, skip: tuple[str, ...] = ()) -> dict[str, float]:
    return {
        b: rng.uniform(1, 10) if b == "mt_bench" else rng.uniform(20, 95)
        for b in BENCHMARKS
        if b not in skip
    }


def fake_run(run: Path, seed: int = 0) -> Path:
    """results/<run>-like folder: every kind of model, selection files, sweeps (workflow layout)."""
    rng = random.Random(seed)
    scores = run / "scores"
    models = ["base", "mix/heuristic/0.1", "mix/heuristic/0.05", "mix/armorm", "mix/hummer"]
    for group in GROUPS:
        models += [f"dpo/{group}/b0.1-lr5e-07", f"dpo/{group}/b0.5-lr3e-07"]
        write_json(
            run / "selection/dpo" / f"{group}.json",
            {"selected": f"dpo/{group}/b0.1-lr5e-07", "criterion": "AVG", "scores": {}},
        )
    write_json(run / "selection/mix/heuristic.json", {"selected": "mix/heuristic/0.1"})
    models += [f"continual/stage{k}" for k in (1, 2, 3)]
    for setting in ("static", "continual"):
        models += [
            f"merge/{setting}/{m}"
            for m in ("ties", "dare_ties", "tsvm", "r_tsvm", "r_tsvm_wo_rank")
        ]
    models += [f"merge/sweep/dare_ties/seed{s}" for s in range(3)]
    models += [f"merge/sweep/ties/density{d}" for d in (0.2, 0.5, 0.8)]
    for model in models:
        write_scores(scores, model, random_scores(rng))
    return run


def tiny_models(root: Path, n_tasks: int = 3, layers: int = 2) -> Path:
    """base + n_tasks fine-tuned safetensors models and a recipe over them; returns the recipe."""
    import torch
    import yaml
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    shapes = {"self_attn.q_proj.weight": (12, 8), "input_layernorm.weight": (8,)}
    base = {
        f"model.layers.{i}.{name}": torch.randn(shape, generator=gen)
        for i in range(layers)
        for name, shape in shapes.items()
    }
    base["model.embed_tokens.weight"] = torch.randn(16, 8, generator=gen)

    def save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
        path.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path / "model.safetensors"))
        (path / "config.json").write_text("{}")

    save(root / "models/base", base)
    labels = []
    for t in range(n_tasks):
        save(
            root / f"models/dpo/task{t}",
            {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in base.items()},
        )
        labels.append(str(root / f"models/dpo/task{t}"))
    recipe = root / "recipes/static/ties.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(
        yaml.safe_dump(
            {
                "merge_method": "ties",
                "base_model": str(root / "models/base"),
                "models": [{"model": m, "parameters": {"weight": 1.0}} for m in labels],
            }
        )
    )
    return recipe

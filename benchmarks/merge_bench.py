"""Time and peak-memory benchmark of mixmerge.merge on synthetic checkpoints.

    python benchmarks/merge_bench.py --models 3 --layers 8 --hidden 1024 --method task_arithmetic

Writes random "base" and perturbed "fine-tune" safetensors checkpoints (no transformers needed)
to a temp dir, merges them, and prints wall time, throughput and the process's peak RSS, which
should stay near (models + 1) x the largest tensor + one output shard, not the model size.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from mixmerge.merge import run_merge


def write_checkpoint(out: Path, layers: int, hidden: int, seed: int, noise: float) -> int:
    out.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)  # same base weights for every model
    noise_gen = torch.Generator().manual_seed(seed)
    shapes = {
        "model.embed_tokens.weight": (4 * hidden, hidden),
        "lm_head.weight": (4 * hidden, hidden),
    }
    for i in range(layers):
        shapes[f"model.layers.{i}.mlp.up_proj.weight"] = (4 * hidden, hidden)
        shapes[f"model.layers.{i}.mlp.down_proj.weight"] = (hidden, 4 * hidden)
        shapes[f"model.layers.{i}.self_attn.q_proj.weight"] = (hidden, hidden)
    state = {}
    for name, shape in shapes.items():
        t = torch.randn(shape, generator=gen)
        if seed:
            t += noise * torch.randn(shape, generator=noise_gen)
        state[name] = t.to(torch.bfloat16)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps({"num_hidden_layers": layers}))
    return sum(t.numel() * t.element_size() for t in state.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--method", default="task_arithmetic", choices=["linear", "task_arithmetic"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = write_checkpoint(root / "base", args.layers, args.hidden, 0, 0.0)
        models = []
        for i in range(1, args.models + 1):
            write_checkpoint(root / f"ft{i}", args.layers, args.hidden, i, 0.01)
            models.append(
                {"model": str(root / f"ft{i}"), "parameters": {"weight": 1 / args.models}}
            )
        recipe = {"merge_method": args.method, "base_model": str(root / "base"), "models": models}
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        run_merge(recipe, root / "out", device=args.device, progress=False)
        wall = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{args.method}: {args.models} models x {size / 1e6:.0f} MB (bf16) in {wall:.2f}s "
            f"({args.models * size / 1e6 / wall:.0f} MB/s in); peak RSS {rss:.0f} MiB "
            f"(before merge {rss_before:.0f} MiB)"
        )


if __name__ == "__main__":
    main()

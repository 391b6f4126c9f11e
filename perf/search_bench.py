"""What a search trial's merge costs, in memory against on disk, on merge_bench's synthetic
Llama-shaped checkpoints (a bf16 base + 5 fine-tunes, ~322M parameters at --scale 1).

    python perf/search_bench.py                 # task_arithmetic and ties, 3 repeats each
    python perf/search_bench.py --scale 0.25 --methods linear

Per method, side by side in one process:
  - on disk: `run_merge` to a fresh directory, then the merged weights read back into the
    resident tensors (what a trial without `search.in_memory` pays before it can evaluate);
  - in memory: `merge_into` the resident tensors (what a trial pays with it).
Each the best of --repeat runs. The ratio, not the absolute seconds, is what carries over to 8B:
both scale with the bytes merged (8B / 0.32B ≈ 25× here).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from merge_bench import build_models, recipe_for  # noqa: E402

from mixmerge.merge.engine import merge_into, run_merge  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def on_disk(recipe: dict, resident: dict[str, torch.Tensor], workdir: Path) -> None:
    """Merge to a fresh directory and read the weights back into the resident tensors."""
    from safetensors.torch import load_file

    out = Path(tempfile.mkdtemp(dir=workdir)) / "m"
    try:
        run_merge(recipe, out, progress=False)
        for name, t in load_file(str(out / "model.safetensors")).items():
            resident[name].copy_(t)
    finally:
        shutil.rmtree(out.parent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/mixmerge-bench")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--methods", default="task_arithmetic,ties")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base, models, shapes = build_models(Path(args.workdir), args.scale, 5)
    params = sum(torch.Size(s).numel() for s in shapes.values())
    resident = {n: torch.empty(s, dtype=torch.bfloat16) for n, s in shapes.items()}
    print(f"{params / 1e6:.0f}M parameters, 5 fine-tunes, bf16; best of {args.repeat}")
    print(f"{'method':<16} {'on disk + reload s':>18} {'in memory s':>12} {'ratio':>6}")
    for method in args.methods.split(","):
        recipe = recipe_for(method, base, models, "exact")
        disk = best(lambda r=recipe: on_disk(r, resident, Path(args.workdir)), args.repeat)
        memory = best(lambda r=recipe: merge_into(r, resident), args.repeat)
        print(f"{method:<16} {disk:>18.2f} {memory:>12.2f} {disk / memory:>6.2f}", flush=True)

if __name__ == "__main__":
    main()

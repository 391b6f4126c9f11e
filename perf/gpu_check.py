"""Check the GPU paths of mixmerge on one machine, in one short run, and print what was measured.

    python perf/gpu_check.py --out /tmp/gpu-check                 # device: cuda
    python perf/gpu_check.py --out /tmp/gpu-check --device cpu    # the same checks on CPU
    python perf/gpu_check.py --out DIR --only merge --methods ties,tsvm

Checks, each PASS / FAIL / SKIP (with the reason) and its numbers:
  merge        every registered merge method on synthetic Llama-shaped checkpoints (--scale of
               merge_bench's model), on --device and on CPU: the largest difference between the
               two, and whether two --device runs are bitwise equal (they must be: the random
               draws are made on CPU and the engine's reductions are ordered);
  generation   greedy chat generation with the hf backend on --device vs CPU (tiny model);
  vllm         the vllm backend vs hf on --device (SKIP where vLLM is not installed);
  dpo          a few DPO steps on --device (bf16 on CUDA): finite loss, a saved model;
  multi-gpu    `accelerate launch --num_processes 2` DPO steps (SKIP with fewer than 2 GPUs).
The summary also goes to OUT/gpu_check.json; the exit status is 1 if any check FAILs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from merge_bench import build_models, recipe_for  # noqa: E402

# fp32 merges on two devices differ by rounding only; relative to weights of size ~0.02
MERGE_ATOL = 1e-5
PROMPTS = [
    "Explain why the sky is blue.",
    "Write a haiku about merging models.",
    "What is 12 times 7?",
    "Name three primary colours.",
]


def _tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        out.update(load_file(str(shard)))
    return out


def check_merge(args: argparse.Namespace, work: Path) -> dict:
    from mixmerge.merge import run_merge

    base, models, _ = build_models(work / "ckpt", args.scale, 3)
    rows = {}
    failed = []
    for method in args.methods.split(","):
        recipe = recipe_for(method, base, models, "exact")
        outs = {}
        for run, device in (("cpu", "cpu"), ("dev1", args.device), ("dev2", args.device)):
            out = work / "merged" / method / run
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            run_merge(recipe, out, device=device, progress=False)
            outs[run] = (out, time.perf_counter() - start)
        cpu, dev1, dev2 = (_tensors(outs[r][0]) for r in ("cpu", "dev1", "dev2"))
        max_diff = max((cpu[k].float() - dev1[k].float()).abs().max().item() for k in cpu)
        bitwise = all(torch.equal(dev1[k], dev2[k]) for k in dev1)
        rows[method] = {
            "cpu_s": round(outs["cpu"][1], 2),
            f"{args.device}_s": round(outs["dev1"][1], 2),
            "max_abs_diff_vs_cpu": max_diff,
            "repeat_bitwise_equal": bitwise,
        }
        if max_diff > MERGE_ATOL or not bitwise:
            failed.append(method)
    return {"status": "FAIL" if failed else "PASS", "failed": failed, "methods": rows}


def _tiny_model(work: Path) -> Path:
    from mixmerge.tiny.model import build_tiny_model

    model = work / "tiny-model"
    if not (model / "config.json").is_file():
        corpus = [p + " " + p[::-1] for p in PROMPTS] * 50
        build_tiny_model(model, corpus, seed=0)
    return model


def _generate(model: Path, device: str, backend: str = "hf") -> list[str]:
    from mixmerge.runtime.generation import generate_chat

    cfg = {"backend": backend, "max_new_tokens": 16, "batch_size": 4, "temperature": 0.0}
    convs = [[{"role": "user", "content": p}] for p in PROMPTS]
    return generate_chat(model, convs, cfg, device)


def check_generation(args: argparse.Namespace, work: Path) -> dict:
    model = _tiny_model(work)
    cpu, dev = _generate(model, "cpu"), _generate(model, args.device)
    same = sum(a == b for a, b in zip(cpu, dev, strict=True))
    status = "PASS" if same == len(PROMPTS) else "FAIL"
    return {"status": status, "same_as_cpu": f"{same}/{len(PROMPTS)}", "sample": dev[0]}


def check_vllm(args: argparse.Namespace, work: Path) -> dict:
    if importlib.util.find_spec("vllm") is None:
        return {"status": "SKIP", "reason": "vllm is not installed"}
    if args.device != "cuda":
        return {"status": "SKIP", "reason": "vllm needs --device cuda"}
    import vllm

    model = _tiny_model(work)
    hf, fast = _generate(model, "cuda"), _generate(model, "cuda", backend="vllm")
    same = sum(a == b for a, b in zip(hf, fast, strict=True))
    # greedy decoding on two kernels may part ways after a near-tie; all empty is a failure
    status = "PASS" if all(fast) and same >= len(PROMPTS) // 2 else "FAIL"
    return {"status": status, "vllm": vllm.__version__, "same_as_hf": f"{same}/{len(PROMPTS)}"}


def _pairs(path: Path) -> Path:
    rows = [
        {
            "prompt": [{"role": "user", "content": p}],
            "chosen": p[::-1],
            "rejected": "no.",
            "source": "gpu_check",
            "dimension": "helpfulness",
        }
        for p in PROMPTS * 4
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _train_cfg(device: str) -> dict:
    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())
    train = {k: v for k, v in cfg["train"].items() if k not in ("sweep", "selection")}
    cuda = device.startswith("cuda")
    return {**train, "device": device, "bf16": cuda, "final_eval_pairs": 4}


def check_dpo(args: argparse.Namespace, work: Path) -> dict:
    if importlib.util.find_spec("trl") is None:
        return {"status": "SKIP", "reason": "trl is not installed"}
    from mixmerge.train.dpo import train_dpo
    from mixmerge.train.settings import TrainSettings

    out = work / "dpo"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    settings = TrainSettings.from_block(_train_cfg(args.device))
    info = train_dpo(_tiny_model(work), [_pairs(work / "pairs.jsonl")], out, settings)
    loss = info["train_loss"]
    ok = (out / "config.json").is_file() and info["steps"] > 0 and loss == loss  # not NaN
    return {
        "status": "PASS" if ok else "FAIL",
        "seconds": round(time.perf_counter() - start, 1),
        "steps": info["steps"],
        "train_loss": loss,
        "final_metrics": info["final_metrics"],
    }


def check_multi_gpu(args: argparse.Namespace, work: Path) -> dict:
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    if gpus < 2:
        return {"status": "SKIP", "reason": f"{gpus} GPU(s): a 2-process launch needs 2"}
    import yaml

    config = work / "multi.yaml"
    full = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())
    full["train"] = {**_train_cfg("cuda"), "gpus": 2}
    config.write_text(yaml.safe_dump(full))
    out = work / "dpo-2gpu"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
        "-m", "mixmerge.cli", "train", "--config", str(config), "--model", str(_tiny_model(work)),
        "--data", str(_pairs(work / "pairs.jsonl")), "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    ok = proc.returncode == 0 and (out / "config.json").is_file()
    return {"status": "PASS" if ok else "FAIL", "tail": (proc.stdout + proc.stderr)[-1500:]}


CHECKS: dict[str, Callable[[argparse.Namespace, Path], dict]] = {
    "merge": check_merge,
    "generation": check_generation,
    "vllm": check_vllm,
    "dpo": check_dpo,
    "multi-gpu": check_multi_gpu,
}


def main() -> int:
    from mixmerge.merge import METHOD_NAMES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work dir; gpu_check.json here")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--scale", type=float, default=0.05, help="merge checkpoints' size")
    parser.add_argument("--only", help="comma-separated checks (default: all)")
    parser.add_argument("--methods", default=",".join(METHOD_NAMES), help="merge check's methods")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    args.out.mkdir(parents=True, exist_ok=True)
    env = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "gpus": torch.cuda.device_count(),
        "python": sys.version.split()[0],
    }
    print(json.dumps(env), flush=True)
    results = {}
    for name in (args.only.split(",") if args.only else CHECKS):
        start = time.perf_counter()
        try:
            results[name] = CHECKS[name](args, args.out)
        except Exception as err:  # a broken path is a finding, not the end of the run
            results[name] = {"status": "FAIL", "error": repr(err), "trace": traceback.format_exc()}
        results[name]["check_s"] = round(time.perf_counter() - start, 1)
        brief = {k: v for k, v in results[name].items() if k not in ("methods", "trace", "tail")}
        print(f"{name:>11}  {results[name]['status']}  {json.dumps(brief, default=str)}", flush=True)
        for method, row in results[name].get("methods", {}).items():
            print(f"{'':>13}{method:<17} {json.dumps(row)}", flush=True)
    tmp = args.out / "gpu_check.json.tmp"
    tmp.write_text(json.dumps({"env": env, "checks": results}, indent=2, default=str))
    os.replace(tmp, args.out / "gpu_check.json")
    return 1 if any(r["status"] == "FAIL" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Time, peak memory and I/O floor of mixmerge.merge on synthetic Llama-shaped checkpoints.

    python perf/merge_bench.py                    # base ≥ 300M params + 5 fine-tunes
    python perf/merge_bench.py --scale 0.05       # quick run on a ~20M-param model
    python perf/merge_bench.py --methods linear,ties --workdir /data/bench
    python perf/merge_bench.py --svd-shapes       # TSVM/R-TSVM on Llama-3-8B shapes

Model mode writes a random bf16 "base" and T perturbed "fine-tunes" (safetensors, cached in
--workdir and reused when the shapes match), then, each in a fresh subprocess, measures
  - the I/O floor: read every input tensor and write the output with no math (the engine's
    own reader and writer);
  - every method: `run_merge` wall time and the process's peak RSS (VmHWM),
each the best of --repeat runs (the floor at least 3; methods slower than 20 s run once), since a shared machine
makes single timings noisy,
and prints one row per method with the ratio to the floor and the memory budget
(T + 1) × largest tensor (in the fp32 compute dtype) + 1 GiB.

--svd-shapes times TSVM and R-TSVM on the 4096×4096 and 14336×4096 matrices of Llama-3-8B
with 5 tasks on this machine, for each `svd` mode (full, exact, lowrank), and the relative
Frobenius error of exact and lowrank against full.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

GIB = 2**30
MIB = 2**20
RANDOM_SPARSE = {"ties", "dare_linear", "dare_ties", "breadcrumbs", "breadcrumbs_ties"}
DELLA = {"della", "della_linear"}
LOWRANK = [6, 300]  # niter, oversample used by --svd-shapes (the methods' defaults)


# --- synthetic checkpoints ------------------------------------------------------------------


def llama_config(scale: float) -> dict:
    """A Llama-shaped config: scale 1.0 has 22 layers, hidden 1024, vocab 32000 (~322M params)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 1024,
        "intermediate_size": 2816,
        "num_hidden_layers": max(1, round(22 * scale)),
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "vocab_size": max(256, round(32000 * scale)),
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }


def llama_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    h, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = h // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, h),
            p + "post_attention_layernorm.weight": (h,),
            p + "mlp.gate_proj.weight": (f, h),
            p + "mlp.up_proj.weight": (f, h),
            p + "mlp.down_proj.weight": (h, f),
        }
    shapes |= {"model.norm.weight": (h,), "lm_head.weight": (v, h)}
    return shapes


def build_models(workdir: Path, scale: float, n_models: int) -> tuple[Path, list[Path], dict]:
    """Base + n fine-tunes (bf16), cached: rebuilt only when the config or count changes."""
    from safetensors.torch import save_file

    cfg = llama_config(scale)
    shapes = llama_shapes(cfg)
    key = json.dumps({"cfg": cfg, "models": n_models, "v": 1}, sort_keys=True)
    root = workdir / "models"
    stamp = root / "stamp.json"
    dirs = [root / "base", *(root / f"ft{i}" for i in range(1, n_models + 1))]
    if stamp.is_file() and stamp.read_text() == key and all(d.is_dir() for d in dirs):
        return dirs[0], dirs[1:], shapes
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    for i, d in enumerate(dirs):
        d.mkdir(parents=True)
        gen = torch.Generator().manual_seed(0)  # same base weights in every model
        noise = torch.Generator().manual_seed(i)
        state = {}
        for name, shape in shapes.items():
            t = (1.0 if name.endswith("norm.weight") else 0.02) * torch.randn(shape, generator=gen)
            if name.endswith("norm.weight"):
                t = t.abs_() + 1.0
            if i:  # fine-tune: base + N(0, 0.002)
                t += 0.002 * torch.randn(shape, generator=noise)
            state[name] = t.to(torch.bfloat16)
        save_file(state, str(d / "model.safetensors"), metadata={"format": "pt"})
        (d / "config.json").write_text(json.dumps(cfg, indent=2))
        del state
    stamp.write_text(key)
    print(f"built {len(dirs)} checkpoints in {time.perf_counter() - start:.0f}s", flush=True)
    return dirs[0], dirs[1:], shapes


def recipe_for(method: str, base: Path, models: list[Path], svd: str) -> dict:
    """Each model weighted 1/T where the method takes weights, as many models as it takes (its
    `exact_models`), every required global parameter 0.4."""
    from mixmerge.merge.registry import METHODS

    cls = METHODS[method]
    models = models[: cls.exact_models or len(models)]
    takes_weight = any(p.name == "weight" for p in cls.model_params)
    entries = []
    for m in models:
        params: dict = {"weight": 1.0 / len(models)} if takes_weight else {}
        if method in RANDOM_SPARSE or method in DELLA:
            params["density"] = 0.5
        if method in DELLA:
            params["epsilon"] = 0.1
        entries.append({"model": str(m), "parameters": params} if params else {"model": str(m)})
    recipe: dict = {"merge_method": method, "models": entries, "dtype": "float32"}
    if method not in ("linear", "passthrough"):
        recipe["base_model"] = str(base)
    required = {p.name: 0.4 for p in cls.global_params if p.required}
    if method in ("tsvm", "r_tsvm"):
        required["svd"] = svd
    if required:
        recipe["parameters"] = required
    return recipe


# --- one measurement per subprocess ---------------------------------------------------------


def child_floor(base: Path, models: list[Path], out: Path) -> dict:
    """Read every input tensor and write the base's as the output: the engine's reader and
    writer with no math. "Read" = copy every stored byte out of the mapping into reused
    cache-resident buffers, 512 KiB at a time (a streamed chunk of bf16), spread over as
    many workers as the engine streams with, then release the pages as the engine does."""
    import concurrent.futures
    import contextlib
    import threading

    from mixmerge.merge.modelio import ModelFiles, ShardWriter

    workers = torch.get_num_threads()
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        readers = [ModelFiles(str(p), p) for p in [base, *models]]
        for r in readers:
            r.open(stack)
        ref = readers[0]
        out.mkdir(parents=True)
        writer = ShardWriter(out, 2 * 10**9, [(n, ref.shape(n), ref.dtype(n)) for n in ref.names])
        torch.set_num_threads(1)  # as the engine streams: one thread per op, pieces in a pool
        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(workers))
        piece = 1 << 19
        local = threading.local()

        def read(flats: list[torch.Tensor], s: int) -> None:
            if not hasattr(local, "scratch"):
                local.scratch = torch.empty(piece, dtype=torch.uint8)
            for f in flats:
                part = f[s : s + piece]
                local.scratch[: part.numel()].copy_(part)

        for name in ref.names:
            flats = [r.view(name).reshape(-1).view(torch.uint8) for r in readers]
            list(pool.map(lambda s, flats=flats: read(flats, s), range(0, flats[0].numel(), piece)))
            writer.add(name, ref.view(name))
            for r in readers:
                r.release(name)
        writer.finish()
    return {"wall": time.perf_counter() - start}


def child_merge(recipe: dict, out: Path, device: str) -> dict:
    from mixmerge.merge import run_merge

    start = time.perf_counter()
    run_merge(recipe, out, device=device, progress=False)
    return {"wall": time.perf_counter() - start}


def proc_status(key: str) -> int:
    """Bytes of a /proc/self/status memory field. VmHWM is this process's peak RSS; unlike
    ru_maxrss it starts afresh at exec (ru_maxrss keeps the forking parent's high-water mark)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_child(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "_child", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what")
    ap.add_argument("--spec", required=True)
    a = ap.parse_args(argv)
    spec = json.loads(a.spec)
    rss_start = proc_status("VmHWM")
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    if a.what == "floor":
        res = child_floor(Path(spec["base"]), [Path(m) for m in spec["models"]], out)
    else:
        res = child_merge(spec["recipe"], out, spec["device"])
    res["peak_rss"] = proc_status("VmHWM")
    res["start_rss"] = rss_start
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(res))


def warm_cache(paths: list[Path]) -> None:
    for p in paths:
        for f in sorted(p.glob("*.safetensors")):
            with open(f, "rb") as fh:
                while fh.read(64 * MIB):
                    pass


def model_bench(args: argparse.Namespace) -> None:
    from mixmerge.merge import METHOD_NAMES

    methods = METHOD_NAMES if args.methods == "all" else args.methods.split(",")
    unknown = set(methods) - set(METHOD_NAMES)
    if unknown:
        raise SystemExit(f"unknown methods: {sorted(unknown)}")
    workdir = Path(args.workdir)
    base, models, shapes = build_models(workdir, args.scale, args.models)
    n_params = sum(math.prod(s) for s in shapes.values())
    largest = max(math.prod(s) for s in shapes.values()) * 4  # fp32 compute dtype
    budget = (len(models) + 1) * largest + GIB
    warm_cache([base, *models])
    common = {"base": str(base), "models": [str(m) for m in models], "out": str(workdir / "out")}
    # the floor at least 3 times whatever --repeat: it is cheap, and one run of it moved
    # 2.0-4.7 s on this project's 2-core machines, which would flatter every ratio
    runs = max(args.repeat, 3)
    floors = [run_child(["floor", "--spec", json.dumps(common)]) for _ in range(runs)]
    floor = min(f["wall"] for f in floors)
    in_bytes = (len(models) + 1) * n_params * 2

    print(
        f"\nmixmerge.merge on {n_params / 1e6:.0f}M-param Llama-shaped bf16 checkpoints: base + "
        f"{len(models)} fine-tunes ({in_bytes / GIB:.2f} GiB read, {n_params * 2 / GIB:.2f} "
        f"GiB written per merge); device {args.device}, {torch.get_num_threads()} threads, "
        f"compute dtype float32, page cache warm"
    )
    print(
        f"I/O floor (read all inputs + write output, no math): {floor:.2f}s   "
        f"largest tensor (fp32) {largest / MIB:.0f} MiB   "
        f"RSS budget (T+1)×largest + 1 GiB = {budget / MIB:.0f} MiB   "
        f"interpreter+torch RSS at start ≈ {floors[0]['start_rss'] / MIB:.0f} MiB\n"
    )
    header = f"| {'method':<22} | {'wall s':>7} | {'× floor':>7} | {'peak RSS MiB':>12} | {'RSS ≤ budget':>12} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    print(
        f"| {'I/O floor':<22} | {floor:7.2f} | {1.0:7.2f} | "
        f"{max(f['peak_rss'] for f in floors) / MIB:12.0f} | {'':>12} |",
        flush=True,
    )
    for method in methods:
        label = method + (f" (svd={args.tsvm_svd})" if method in ("tsvm", "r_tsvm") else "")
        spec = dict(common, device=args.device)
        spec["recipe"] = recipe_for(method, base, models, args.tsvm_svd)
        runs = [run_child(["merge", "--spec", json.dumps(spec)])]
        while len(runs) < args.repeat and sum(r["wall"] for r in runs) < 20:
            runs.append(run_child(["merge", "--spec", json.dumps(spec)]))
        res = {"wall": min(r["wall"] for r in runs), "peak_rss": max(r["peak_rss"] for r in runs)}
        ok = "yes" if res["peak_rss"] <= budget else "NO"
        print(
            f"| {label:<22} | {res['wall']:7.2f} | {res['wall'] / floor:7.2f} | "
            f"{res['peak_rss'] / MIB:12.0f} | {ok:>12} |",
            flush=True,
        )


# --- SVD shapes -----------------------------------------------------------------------------


def decaying_deltas(m: int, n: int, tasks: int, seed: int = 0) -> list[torch.Tensor]:
    """Task vectors shaped like fine-tuning deltas: a decaying head of 1024 directions with
    singular values ≈ 0.01/√(1+i), plus a full-rank noise floor (≈ 3e-4)."""
    gen = torch.Generator().manual_seed(seed)
    head = 1024
    decay = 0.01 / torch.arange(1, head + 1, dtype=torch.float32).sqrt()
    out = []
    for _ in range(tasks):
        a = torch.randn(m, head, generator=gen) / math.sqrt(m)
        b = torch.randn(head, n, generator=gen) / math.sqrt(n)
        d = (a * decay) @ b
        d += torch.randn(m, n, generator=gen) * (1e-4 / math.sqrt(n))
        out.append(d)
    return out


def svd_context(method: str, deltas: list[torch.Tensor], svd: str, device: str):
    from mixmerge.merge.base import TensorContext
    from mixmerge.merge.registry import get_method

    m = get_method(method)
    params = {p.name: p.default for p in m.global_params}
    params["svd"] = svd
    params["niter"], params["oversample"] = LOWRANK
    dev = torch.device(device)
    base = torch.zeros(deltas[0].shape, device=dev)
    ctx = TensorContext(
        name="model.layers.0.mlp.up_proj.weight",
        tensors=[d.to(dev) for d in deltas],  # base is 0, so θ_i = δ_i
        model_params=[{} for _ in deltas],
        params=params,
        base=base,
        model_indices=list(range(len(deltas))),
        model_labels=[f"task{i}" for i in range(len(deltas))],
        seed=0,
        device=dev,
        dtype=torch.float32,
    )
    return m, ctx


def timed_merge(method: str, deltas: list[torch.Tensor], svd: str, device: str):
    m, ctx = svd_context(method, deltas, svd, device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    out = m.merge(ctx)
    sync()
    return time.perf_counter() - start, out.cpu()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


class SharedComponents:
    """TSVM and R-TSVM build the same TSV candidates (per-task SVDs + polar factors). TSVM's
    run records them and their time; R-TSVM's run replays them, so its own time is only its
    extra steps (outlier weights, sparsity, reweighting, selection, product), and
    R-TSVM total = candidate time + that. Both outputs are the real methods' outputs."""

    def __init__(self) -> None:
        from mixmerge.merge.methods import r_tsvm, tsvm

        self.tsvm, self.r_tsvm = tsvm, r_tsvm
        self.orig = tsvm.tsv_components
        self.cache: dict[str, tuple] = {}
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> SharedComponents:
        def record(ctx, deltas, k):
            start = time.perf_counter()
            out = self.orig(ctx, deltas, k)
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            self.seconds[ctx.params["svd"]] = time.perf_counter() - start
            self.cache[ctx.params["svd"]] = out
            return out

        self.tsvm.tsv_components = record
        self.r_tsvm.tsv_components = lambda ctx, deltas, k: self.cache[ctx.params["svd"]]
        return self

    def __exit__(self, *exc: object) -> None:
        self.tsvm.tsv_components = self.orig
        self.r_tsvm.tsv_components = self.orig


SVD_MODES = ("full", "exact", "lowrank")


def svd_bench(args: argparse.Namespace) -> None:
    tasks = args.models
    print(
        f"TSVM / R-TSVM on Llama-3-8B matrix shapes, {tasks} tasks, device {args.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; synthetic task vectors "
        f"(1024-direction head with σ_i ≈ 0.01/√(1+i) + noise floor). svd: full = one LAPACK "
        f"SVD per task and per polar factor (fusion_bench's calls); exact = Gram "
        f"eigendecompositions (float32 per task + float64 Rayleigh–Ritz, float64 polar); lowrank = randomized SVD of each task, q = k + {LOWRANK[1]}, "
        f"niter = {LOWRANK[0]}, polar factors as exact\n"
    )
    torch.linalg.svd(torch.randn(256, 256))  # first-call LAPACK setup out of the timings
    torch.linalg.eigh(torch.randn(256, 256, dtype=torch.float64))
    rows = []
    for m, n in (tuple(int(x) for x in shape.split("x")) for shape in args.svd_shape):
        deltas = decaying_deltas(m, n, tasks)
        seconds: dict[str, tuple[float, float]] = {}
        merged: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for mode in SVD_MODES:
            with SharedComponents() as shared:
                t_tsvm, m_tsvm = timed_merge("tsvm", deltas, mode, args.device)
                t_extra, m_rtsvm = timed_merge("r_tsvm", deltas, mode, args.device)
            seconds[mode] = (t_tsvm, shared.seconds[mode] + t_extra)
            merged[mode] = (m_tsvm, m_rtsvm)
            print(f"{m}×{n} svd={mode}: TSVM {t_tsvm:.1f} s", flush=True)
        full = merged["full"]
        for mode in SVD_MODES:
            errs = [rel_err(a, b) for a, b in zip(merged[mode], full, strict=True)]
            rows.append(
                (
                    f"{m}×{n}",
                    mode,
                    f"{seconds[mode][0]:.1f}",
                    f"{seconds['full'][0] / seconds[mode][0]:.2f}",
                    "—" if mode == "full" else f"{errs[0]:.2e}",
                    f"{seconds[mode][1]:.1f}",
                    f"{seconds['full'][1] / seconds[mode][1]:.2f}",
                    "—" if mode == "full" else f"{errs[1]:.2e}",
                )
            )
        del deltas, merged
    heads = ("shape", "svd", "TSVM s", "× faster", "TSVM err", "R-TSVM s", "× faster", "R-TSVM err")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print(
        "\nk = ⌊r/T⌋ components per task. err = ‖M − M_full‖_F / ‖M_full‖_F of the merged "
        "update M (TSVM; R-TSVM with its defaults). × faster = full's time / this one's. "
        "R-TSVM time = the shared TSV candidates (as in TSVM) + its own steps."
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child_main(sys.argv[2:])
        return
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workdir", default=os.path.join("/tmp", "mixmerge-bench"))
    ap.add_argument("--scale", type=float, default=1.0, help="1.0: ~322M-param base")
    ap.add_argument("--models", type=int, default=5, help="fine-tunes / tasks (T)")
    ap.add_argument("--methods", default="all", help="comma-separated, or 'all'")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--tsvm-svd",
        default="exact",
        choices=list(SVD_MODES),
        help="the `svd` parameter for tsvm/r_tsvm in model mode",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each method under 20 s in total (of the floor: at least 3); the best is reported",
    )
    ap.add_argument("--svd-shapes", action="store_true", help="TSVM/R-TSVM on 8B shapes")
    ap.add_argument(
        "--svd-shape",
        action="append",
        help="MxN matrix shape for --svd-shapes (repeatable; default 4096x4096 and 14336x4096)",
    )
    ap.add_argument("--niter", type=int, default=LOWRANK[0], help="lowrank power iterations")
    ap.add_argument("--oversample", type=int, default=LOWRANK[1], help="lowrank oversampling")
    args = ap.parse_args()
    args.svd_shape = args.svd_shape or ["4096x4096", "14336x4096"]
    LOWRANK[:] = [args.niter, args.oversample]
    if args.svd_shapes:
        svd_bench(args)
    else:
        model_bench(args)


if __name__ == "__main__":
    main()

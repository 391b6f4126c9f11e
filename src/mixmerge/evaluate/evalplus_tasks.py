"""HumanEval+ and MBPP+ through evalplus: greedy chat generation, evalplus's sanitizer and sandbox.

Pipeline per benchmark: the steps of `evalplus.evaluate` with its defaults, run through the
lower-level functions (no `<samples>_eval_results.json` reused behind our back, no ground truth
cached in the user's home, no 20 s watchdog thread at exit as with the CLI):

1. Problems: `data_files` (a HumanEvalPlus / MbppPlus `.jsonl[.gz]` in the release schema, e.g.
   from `mixmerge.tiny.evalplus_fixtures`) or, without it, evalplus's own pinned release
   (`get_human_eval_plus()` v0.1.10 / `get_mbpp_plus()` v0.2.0, downloaded once into
   `$XDG_CACHE_HOME/evalplus`). MBPP+ inputs go through `mbpp_deserialize_inputs` as in evalplus.
   `limit` keeps the first N problems.
2. Prompts: evalplus's instruct-model prompt, rendered by evalplus's own `make_raw_chat_prompt`
   with the instruction and response prefixes of `evalplus.codegen.run_codegen`: the user turn
   holds the task prompt in a code fence, the assistant turn starts with the response prefix and
   an opened ```python fence that the model continues. Chat models only (as every model here).
3. Generation: greedy (temperature 0, as the paper) on the model of `mixmerge.runtime.generation`'s
   per-process cache, backend hf (`load_hf_model` + `hf_generate`) or vllm (its engine, with
   evalplus's stop strings), chosen by `evaluate.generation.backend`. The reply is cut at
   evalplus's stop strings (its EOS list + "\n```\n") and tabs become 4 spaces, as evalplus's
   decoders do; the solution is the reply alone (chat model), through
   `evalplus.sanitize.sanitize(reply, entry_point)`. One deviation: evalplus's HF decoder encodes
   the rendered prompt with special tokens, i.e. a second BOS after the template's own; we don't.
4. Ground truth: the canonical solutions run through evalplus's `trusted_exec` (outputs and
   reference times, as `evalplus.evaluate.get_groundtruth`), in the worker process below;
   cached on disk only when `cache_dir` is set (`<md5 of the problems file>-evalplus<ver>.pkl`).
5. Checking: evalplus's `untrusted_check` on base inputs and on extra (plus) inputs per sample,
   i.e. `evalplus.evaluate.check_correctness` with `fast_check`. Each run is a sandbox child
   process with evalplus's per-input time limits (max(min_time_limit, gt_time_limit_factor x
   reference time)), a whole-run timeout after which it is killed, evalplus's
   `reliability_guard` and an address-space limit (`max_memory_mb`, EVALPLUS_MAX_MEMORY_BYTES).
   The sandbox children are forked from a fresh worker interpreter (`python -m`
   `mixmerge.evaluate.evalplus_sandbox`, with evalplus's pool of `parallel` processes), without
   torch or model weights, never from the pipeline's own process: the memory limit is not eaten
   by the model's address space and generated code never runs in it. Unlike evalplus, that
   worker runs inside an OS-level boundary (`evaluate.sandbox`, `mixmerge.evaluate.isolation`;
   recorded as `sandbox.boundary`); verdicts are evalplus's.
6. Score: pass@1 on "base + extra tests" (a sample passes when both the base and the plus run
   pass) x 100 = the HumanEval+ / MBPP+ number of the table; base-only pass@1 is kept as
   `base_score`.

bench_cfg keys: data_files (path, or {test: path}), limit, generation (overrides of
evaluate.generation; temperature must stay 0), device (else evaluate.device, else "cpu"),
min_time_limit (s, default evalplus's 1.0), gt_time_limit_factor (default 4.0), max_memory_mb
(default 4096, evalplus's default), parallel (sandbox worker processes, default
max(1, cpu_count // 2) as evalplus), cache_dir (ground-truth cache, default none).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixmerge.evaluate import isolation
from mixmerge.evaluate.evalplus_sandbox import run_sandbox
from mixmerge.evaluate.registry import EvalContext
from mixmerge.hub import EVALPLUS_URLS, resolve_data_file, url_file
from mixmerge.io import atomic_file
from mixmerge.runtime import vllm_backend
from mixmerge.runtime.settings import GenerationSettings

log = logging.getLogger(__name__)

# benchmark id -> evalplus dataset name (selects evalplus's special oracles)
DATASETS = {"humaneval_plus": "humaneval", "mbpp_plus": "mbpp"}

# evalplus 0.3.1 `run_codegen` (evalplus/codegen.py): the prompt prefixes of instruct models.
INSTRUCTION_PREFIX = (
    "Please provide a self-contained Python script that solves the following problem in a "
    "markdown code block:"
)
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and "
    "passes corresponding tests:"
)
CHAT_STOP = "\n```\n"  # evalplus's extra stop string for chat models

REQUIRED_KEYS = (
    "task_id",
    "prompt",
    "entry_point",
    "canonical_solution",
    "base_input",
    "plus_input",
    "atol",
    "contract",
)

Generate = Callable[[list[str]], list[str]]  # evalplus task prompts -> raw replies


def run(ctx: EvalContext) -> dict[str, Any]:
    """Score HumanEval+ or MBPP+ (the registry's `evalplus` runner)."""
    return evaluate_benchmark(ctx, ctx.benchmark)


# ---------------------------------------------------------------- problems


def _data_file(benchmark: str, data_files: Any) -> Path:
    if isinstance(data_files, dict):
        if set(data_files) != {"test"}:
            raise ValueError(
                f"{benchmark}: data_files must be a path or {{test: path}}, got {data_files!r}"
            )
        data_files = data_files["test"]
    if not isinstance(data_files, (str, os.PathLike)):
        raise ValueError(
            f"{benchmark}: data_files must be a path or {{test: path}}, got {data_files!r}"
        )
    path = Path(data_files).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"{benchmark}: data file not found: {path}")
    return path


def load_problems(
    benchmark: str, data_files: Any = None, sha256: str | None = None
) -> tuple[dict[str, dict], str, str]:
    """Problems by task id (file order), the file they came from and its md5 (evalplus's hash).

    Without `data_files`, evalplus's own release file: with `sha256`, fetched (or read from the
    hub mirror) and checked by mixmerge, then handed to evalplus; without, evalplus downloads it.
    """
    dataset = DATASETS[benchmark]
    if not data_files:  # evalplus's own pinned release (downloaded into $XDG_CACHE_HOME/evalplus)
        import evalplus.data.humaneval
        import evalplus.data.mbpp
        from evalplus.data import (
            get_human_eval_plus,
            get_human_eval_plus_hash,
            get_mbpp_plus,
            get_mbpp_plus_hash,
        )

        url = EVALPLUS_URLS[benchmark]
        if sha256:  # checked here: the mirror's copy or a download into mixmerge's cache
            mirrored: Path | None = resolve_data_file(url, sha256)[0]
        else:
            mirrored = url_file(url)  # with a hub mirror: its copy, no download
        if mirrored is not None:  # evalplus reads its override at import: set the module's copy
            module = evalplus.data.humaneval if dataset == "humaneval" else evalplus.data.mbpp
            name = "HUMANEVAL_OVERRIDE_PATH" if dataset == "humaneval" else "MBPP_OVERRIDE_PATH"
            setattr(module, name, str(mirrored))

        if dataset == "humaneval":
            return get_human_eval_plus(), "evalplus:HumanEvalPlus", get_human_eval_plus_hash()
        return get_mbpp_plus(), "evalplus:MbppPlus", get_mbpp_plus_hash()

    from evalplus.data.mbpp import mbpp_deserialize_inputs
    from evalplus.data.utils import stream_jsonl

    path = _data_file(benchmark, data_files)
    prefix = "HumanEval/" if dataset == "humaneval" else "Mbpp/"
    problems: dict[str, dict] = {}
    try:
        rows = list(stream_jsonl(str(path)))
    except ValueError as err:  # json.JSONDecodeError
        raise ValueError(f"{benchmark}: {path} is not JSON lines ({err})") from None
    for lineno, row in enumerate(rows, 1):
        missing = [key for key in REQUIRED_KEYS if key not in row]
        if missing:
            raise ValueError(f"{benchmark}: {path}:{lineno} lacks {', '.join(missing)}")
        task_id = row["task_id"]
        if not str(task_id).startswith(prefix) or not str(task_id)[len(prefix) :].isdigit():
            raise ValueError(
                f"{benchmark}: {path}:{lineno}: task_id {task_id!r} is not {prefix}<int>"
            )
        if task_id in problems:
            raise ValueError(f"{benchmark}: {path}:{lineno}: duplicate task_id {task_id!r}")
        if dataset == "mbpp":  # as evalplus.data.get_mbpp_plus
            row["base_input"] = mbpp_deserialize_inputs(task_id, row["base_input"])
            row["plus_input"] = mbpp_deserialize_inputs(task_id, row["plus_input"])
        problems[task_id] = row
    if not problems:
        raise ValueError(f"{benchmark}: no problems in {path}")
    return problems, str(path), hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- prompts and replies


def chat_prompt(task_prompt: str, tokenizer: Any) -> str:
    """evalplus's instruct-model prompt text (codegen strips the task prompt, adds a newline)."""
    from evalplus.provider.utility import make_raw_chat_prompt

    if not tokenizer.chat_template:
        raise ValueError(
            "evalplus benchmarks need a chat model: the tokenizer has no chat template"
        )
    return make_raw_chat_prompt(
        task_prompt.strip() + "\n", INSTRUCTION_PREFIX, RESPONSE_PREFIX, tokenizer
    )


def stop_strings() -> list[str]:
    """evalplus's stop strings for chat models (its EOS list + the closing code fence)."""
    from evalplus.provider.utility import EOS

    return [*EOS, CHAT_STOP]  # a copy: evalplus's decoders append to the module-level list


def clean_reply(reply: str) -> str:
    """Cut at the first stop string and expand tabs, as evalplus's HF decoder does."""
    cut = min((reply.index(s) for s in stop_strings() if s in reply), default=len(reply))
    return reply[:cut].replace("\t", "    ")


def generate_solutions(
    ctx: EvalContext, gen_cfg: dict[str, Any], task_prompts: list[str]
) -> tuple[list[str], list[str], dict[str, Any]]:
    """(rendered prompts, raw replies, settings): greedy continuation of evalplus's chat prompt.

    Replies come from the generation cache (`ctx.generations`) where they are there already; the
    model, loaded only when some are missing, is `generation`'s per-process one, the same object
    the other generation-based benchmarks (and an lm-eval HFLM) of this process use.
    """
    from mixmerge.runtime import generation

    g = GenerationSettings.from_config(gen_cfg)
    backend = g.backend
    if backend not in generation.BACKENDS:
        raise ValueError(
            f"{ctx.benchmark}: unknown generation backend {backend!r} (known: hf, vllm)"
        )
    device = (ctx.bench_cfg or {}).get("device") or (ctx.eval_cfg or {}).get("device") or "cpu"
    max_new_tokens = int(g.max_new_tokens)
    settings = {**gen_cfg, "device": device, "max_new_tokens": max_new_tokens}
    settings["stop"] = stop_strings()
    tokenizer = generation.load_tokenizer(ctx.model_dir)
    texts = [chat_prompt(p, tokenizer) for p in task_prompts]
    # hf generates max_new_tokens and clean_reply cuts at the stop strings afterwards; vLLM stops
    # at them while generating, so only its replies depend on them.
    extra = {"stop": settings["stop"]} if backend == "vllm" else {}
    decoding = generation.decoding_settings(gen_cfg, 0.0, device, **extra)

    def run(todo: list[int], save: Callable[..., None]) -> None:
        def saved(local: list[int], replies: list[str]) -> None:
            save([todo[j] for j in local], replies)

        if backend == "hf":
            model, tokenizer = generation.load_hf_model(
                ctx.model_dir, device, g.dtype
            )
            # The template already holds BOS (evalplus's own HF decoder would add a second one).
            generation.hf_generate(
                model,
                tokenizer,
                [texts[i] for i in todo],
                [0.0] * len(todo),
                gen_cfg,
                add_special_tokens=False,
                desc=ctx.benchmark,
                on_batch=saved,
            )
            return
        from vllm import SamplingParams

        from mixmerge.runtime.lm_eval_model import release_lms

        release_lms()  # an lm-eval vLLM engine of this process would hold GPU memory beside ours
        llm = vllm_backend.vllm_engine(Path(ctx.model_dir), gen_cfg)
        tokenizer = llm.get_tokenizer()
        # as evalplus's VllmDecoder: greedy, stop strings applied by vLLM
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=stop_strings())
        for start in range(0, len(todo), vllm_backend.VLLM_CHUNK):
            part = list(range(start, min(start + vllm_backend.VLLM_CHUNK, len(todo))))
            prompts = [
                {"prompt_token_ids": tokenizer(texts[todo[j]], add_special_tokens=False)["input_ids"]}
                for j in part
            ]
            outputs = llm.generate(prompts, params, use_tqdm=True)
            saved(part, [out.outputs[0].text for out in outputs])

    replies = ctx.generations.generate(backend, texts, [decoding] * len(texts), run)
    return texts, replies, settings


def _load_gt_cache(cache_dir: str | Path | None, data_md5: str) -> tuple[Path | None, dict]:
    import evalplus

    if not cache_dir:
        return None, {}
    path = Path(cache_dir) / f"{data_md5}-evalplus{evalplus.__version__}.pkl"
    if not path.is_file():
        return path, {}
    with open(path, "rb") as handle:
        return path, pickle.load(handle)


# ---------------------------------------------------------------- the benchmark


def _positive(bench_cfg: dict[str, Any], key: str, default: float, benchmark: str) -> float:
    value = bench_cfg.get(key)
    value = default if value is None else float(value)
    if value <= 0:
        raise ValueError(f"{benchmark}: {key} must be > 0, got {value}")
    return value


def evaluate_benchmark(
    ctx: EvalContext, benchmark: str, generate: Generate | None = None
) -> dict[str, Any]:
    """Score HumanEval+ / MBPP+ on ctx.model_dir; `generate` replaces the model (tests)."""
    import evalplus
    from evalplus.config import DEFAULT_GT_TIME_LIMIT_FACTOR, DEFAULT_MIN_TIME_LIMIT
    from evalplus.eval import PASS, estimate_pass_at_k
    from evalplus.sanitize import sanitize

    if benchmark not in DATASETS:
        raise ValueError(f"unknown evalplus benchmark {benchmark!r} (known: {', '.join(DATASETS)})")
    dataset = DATASETS[benchmark]
    bench_cfg, eval_cfg = ctx.bench_cfg or {}, ctx.eval_cfg or {}

    gen_cfg = {**(eval_cfg.get("generation") or {}), **(bench_cfg.get("generation") or {})}
    if float((bench_cfg.get("generation") or {}).get("temperature", 0.0)) != 0.0:
        raise ValueError(f"{benchmark}: generation.temperature must be 0 (greedy, as the paper)")
    gen_cfg["temperature"] = 0.0  # greedy, whatever the judged benchmarks use
    min_time_limit = _positive(bench_cfg, "min_time_limit", DEFAULT_MIN_TIME_LIMIT, benchmark)
    factor = _positive(bench_cfg, "gt_time_limit_factor", DEFAULT_GT_TIME_LIMIT_FACTOR, benchmark)
    max_memory_mb = int(_positive(bench_cfg, "max_memory_mb", 4096, benchmark))
    workers = int(_positive(bench_cfg, "parallel", max(1, (os.cpu_count() or 2) // 2), benchmark))
    boundary = isolation.choose(eval_cfg.get("sandbox"))  # before any generation: fails fast

    problems, source, data_md5 = load_problems(
        benchmark, bench_cfg.get("data_files"), bench_cfg.get("sha256")
    )
    limit = bench_cfg.get("limit")
    if limit is not None:
        if int(limit) < 1:
            raise ValueError(f"{benchmark}: limit must be >= 1, got {limit}")
        problems = dict(list(problems.items())[: int(limit)])

    task_prompts = [problem["prompt"] for problem in problems.values()]
    log.info("%s: generating %d solutions", benchmark, len(task_prompts))
    if generate is None:
        texts, replies, gen_settings = generate_solutions(ctx, gen_cfg, task_prompts)
    else:
        texts, replies, gen_settings = task_prompts, generate(task_prompts), {"backend": "custom"}
    if len(replies) != len(task_prompts):
        raise RuntimeError(f"{benchmark}: got {len(replies)} replies for {len(task_prompts)}")
    solutions = {  # chat model: the solution is the reply alone (evalplus's codegen)
        task_id: sanitize(clean_reply(reply), entrypoint=problem["entry_point"])
        for (task_id, problem), reply in zip(problems.items(), replies, strict=True)
    }

    cache_file, cached = _load_gt_cache(bench_cfg.get("cache_dir"), data_md5)
    oracles, verdicts = run_sandbox(
        dataset,
        problems,
        solutions,
        Path(ctx.work_dir),
        oracles=cached,
        min_time_limit=min_time_limit,
        gt_time_limit_factor=factor,
        max_memory_mb=max_memory_mb,
        parallel=workers,
        sandbox=boundary,
    )
    if cache_file is not None and any(task_id not in cached for task_id in oracles):
        with atomic_file(cache_file, "wb") as handle:
            pickle.dump({**cached, **oracles}, handle)
    verdicts = {task_id: verdicts[task_id] for task_id in problems}

    base_ok, plus_ok = [], []
    for (task_id, verdict), text, reply in zip(verdicts.items(), texts, replies, strict=True):
        base_ok.append(verdict["base"] == PASS)
        plus_ok.append(verdict["base"] == verdict["plus"] == PASS)
        ctx.samples.append(
            {
                "benchmark": benchmark,
                "task_id": task_id,
                "prompt": text,
                "output": reply,
                "solution": solutions[task_id],
                "base_status": verdict["base"],
                "plus_status": verdict["plus"],
                "correct": plus_ok[-1],
            }
        )
    n = len(plus_ok)
    # greedy: one sample per task, so pass@1 is the pass rate (evalplus's unbiased estimator)
    plus_pass1 = float(estimate_pass_at_k(1, plus_ok, 1).mean())
    base_pass1 = float(estimate_pass_at_k(1, base_ok, 1).mean())
    return {
        "benchmark": benchmark,
        "score": 100.0 * plus_pass1,
        "n": n,
        "metric": "pass@1 (base + extra tests)",
        "base_score": 100.0 * base_pass1,
        "evalplus_version": evalplus.__version__,
        "dataset": dataset,
        "data_file": source,
        "data_md5": data_md5,
        "limit": limit,
        "prompt": {"instruction_prefix": INSTRUCTION_PREFIX, "response_prefix": RESPONSE_PREFIX},
        "generation": gen_settings,
        "sandbox": {
            "min_time_limit": min_time_limit,
            "gt_time_limit_factor": factor,
            "max_memory_mb": max_memory_mb,
            "parallel": workers,
            "boundary": boundary,  # evaluate.sandbox's choice: bwrap | unshare | none
        },
        "status_counts": {
            part: {
                s: sum(v[part] == s for v in verdicts.values()) for s in ("pass", "fail", "timeout")
            }
            for part in ("base", "plus")
        },
    }

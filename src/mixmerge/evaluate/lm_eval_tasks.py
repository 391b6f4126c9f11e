"""GSM8K, ARC-Easy, ARC-Challenge, MMLU and MATH through lm-eval's built-in tasks.

Each benchmark function runs `lm_eval.simple_evaluate` on `ctx.model_dir` and returns
`{"benchmark", "score", "n", "metric", "num_fewshot", "task", "lm_eval_version", "settings", ...}`,
the score ×100 (the paper's table scale); `settings` holds the backend, model args, data files,
limit, generation kwargs, chat-template use and lm-eval's task versions. One record per scored
item goes to `ctx.samples`.

Model: lm-eval's `hf` (HFLM) or `vllm` LM, chosen by `evaluate.generation.backend` (the switch the
generation-based benchmarks use too), passed to `simple_evaluate` as an LM object (`cached_lm`).
hf: an HFLM around the model of `generation.load_hf_model`'s per-process cache, so the five
lm-eval benchmarks, evalplus and the judged benchmarks of one `mixmerge evaluate` process share
one load. vllm: lm-eval's own VLLM, kept for the next lm-eval benchmark (one engine at a time).
Chat template: off by default (`apply_chat_template: false`): lm-eval's standard few-shot
prompts, as the usual reported numbers for these benchmarks (Open LLM Leaderboard style), which
is what the paper's tables compare; set it per benchmark to evaluate through the template.

Data: without `data_files` the built-in task runs as is (hub datasets, as in the paper). With
`data_files` ({split: path}, files in the hub schema, e.g. from `mixmerge.tiny.lmeval_fixtures`)
a task YAML is written into `ctx.work_dir` that `include`s the installed built-in task YAML and
only re-points its dataset (`dataset_path: json`), so prompts, few-shot setup, filters and metrics
stay exactly lm-eval's.

| benchmark     | built-in task (hub)   | local-file task includes             | splits        | shots | metric,filter                 |
|---------------|-----------------------|--------------------------------------|---------------|-------|-------------------------------|
| gsm8k         | gsm8k                 | gsm8k/gsm8k.yaml                     | train, test   | 5     | exact_match,flexible-extract  |
| arc_easy      | arc_easy              | arc/arc_easy.yaml                    | train, validation, test | 0 | acc_norm,none            |
| arc_challenge | arc_challenge         | arc/arc_challenge.yaml               | train, validation, test | 0 | acc_norm,none            |
| mmlu          | mmlu (group of 57)    | mmlu/default/_default_template_yaml  | dev, test     | 5     | acc,none                      |
| math          | minerva_math (group of 7) | minerva_math/minerva_math_algebra.yaml | test (train unused) | 4 | exact_match,none      |

Choices:
- GSM8K filter `flexible-extract` (last number of the reply) rather than `strict-match` (needs the
  few-shot `#### N` format): alignment-tuned and merged chat models often answer in their own
  format, and the paper compares such models on math ability. Set `filter: strict-match` to get
  the Open LLM Leaderboard-style number; both are kept in the record's `all_metrics`.
- MATH uses `minerva_math` (4-shot Minerva prompt, fixed few-shot examples built into lm-eval):
  it is the standard few-shot MATH setup for instruct models and, as its shots do not come from
  the data, it re-points at one local test file. What `exact_match` compares: the GOLD answer is
  the last `\\boxed{}` of the reference solution, normalised; the MODEL's answer is the text of
  "Final Answer: The final answer is X. I hope it is correct." (the shots' closing sentence),
  normalised the same way; a reply without that sentence scores 0, whatever it boxes. So
  exact_match measures the Minerva answer format as well as the maths: a chat model that ends
  with `\\boxed{X}` instead, or in its own words, is wrong. `metric: math_verify` (lm-eval's
  math-verify score: the whole reply parsed with math-verify and checked for mathematical
  equivalence with the reference solution) is the better metric for such models, or whenever
  format drift across merged models would otherwise look like a change in maths ability; the
  paper configs keep exact_match, lm-eval's default, and both land in the record's all_metrics.
  `hendrycks_math` is 0-shot with a bare "Problem: ... Answer:" prompt and compares the raw reply
  with the normalised answer, which is not the usual reported MATH setup.
- MMLU from local files is ONE task over all rows (the per-subject description is templated from
  each row's `subject`); its 5 shots are the first rows of `dev` (lm-eval's `first_n` sampler) for
  every subject, whereas the hub group uses each subject's own 5 dev rows.
- `limit` is per lm-eval task, i.e. per MMLU subject / MATH subject with the hub groups.

bench_cfg keys: data_files, num_fewshot, limit (null = all), gen_kwargs (lm-eval generation
kwargs, e.g. {max_gen_toks: 512}), batch_size (hf: else evaluate.batch_size; vllm: else "auto"),
metric, filter, apply_chat_template (default false), fewshot_as_multiturn (default true, only
with a chat template), system_instruction, device (else evaluate.device, else "cpu"), dtype
(else evaluate.generation.dtype, else "auto"), generation (overrides of evaluate.generation:
backend, and for vllm tensor_parallel_size, gpu_memory_utilization, max_model_len, seed).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixmerge.catalog import Benchmark, catalog
from mixmerge.evaluate.lm_eval_records import request_count, score_record
from mixmerge.evaluate.registry import EvalContext
from mixmerge.hub import mirrored_load_dataset
from mixmerge.runtime.lm_eval_model import cached_lm, lm_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    """How one benchmark maps onto lm-eval: the `options` of its declaration
    (mixmerge/evaluate/tasks/<id>.yaml), each key named as here."""

    benchmark: str
    hub_task: str  # built-in task or group run when there are no data_files
    include: str  # built-in YAML (relative to lm_eval/tasks) the local-file task includes
    split_keys: dict[str, tuple[str, ...]]  # data_files split -> the task-config keys it fills
    fewshot_splits: tuple[str, ...]  # splits the few-shot examples come from (empty: built-in)
    metric: str
    filter: str
    num_fewshot: int
    overrides: dict[str, Any] = field(default_factory=dict)  # extra keys of the local-file YAML
    eval_split: str = "test"  # the data_files split that is scored
    # folders under lm_eval/tasks that define hub_task (indexed instead of all of lm-eval's)
    folders: tuple[str, ...] = ()

    @classmethod
    def from_benchmark(cls, bench: Benchmark) -> TaskSpec:
        o = dict(bench.options)
        return cls(
            benchmark=bench.id,
            hub_task=o["hub_task"],
            include=o["include"],
            split_keys={split: tuple(keys) for split, keys in o["split_keys"].items()},
            fewshot_splits=tuple(o.get("fewshot_splits") or ()),
            metric=o["metric"],
            filter=o.get("filter", "none"),
            num_fewshot=int(o.get("num_fewshot", 0)),
            overrides=dict(o.get("overrides") or {}),
            eval_split=o.get("eval_split", "test"),
            folders=tuple(o.get("folders") or ()),
        )


# benchmark -> its TaskSpec, for every lm_eval benchmark of the catalog
SPECS: dict[str, TaskSpec] = {
    name: TaskSpec.from_benchmark(bench)
    for name, bench in catalog().items()
    if bench.runner == "lm_eval"
}

# Every task-config split key a local-file task may inherit; the ones without a file are nulled.
_ALL_SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")


def run(ctx: EvalContext) -> dict[str, Any]:
    """Score one lm-eval benchmark (the registry's `lm_eval` runner)."""
    return evaluate_task(ctx, ctx.benchmark)


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).resolve().parent


def local_data_files(spec: TaskSpec, data_files: Any) -> dict[str, list[str]]:
    """Check `data_files` ({split: path | [paths]}) and return absolute paths per split."""
    if not isinstance(data_files, dict) or not data_files:
        raise ValueError(
            f"{spec.benchmark}: data_files must be a mapping split -> file(s), got {data_files!r}"
        )
    known = ", ".join(spec.split_keys)
    out: dict[str, list[str]] = {}
    for split, paths in data_files.items():
        if split not in spec.split_keys:
            raise ValueError(
                f"{spec.benchmark}: unknown split {split!r} in data_files (known: {known})"
            )
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not paths:
            raise ValueError(f"{spec.benchmark}: no file given for split {split!r}")
        resolved = []
        for path in paths:
            path = Path(path).expanduser().resolve()
            if not path.is_file():
                raise ValueError(
                    f"{spec.benchmark}: data file for split {split!r} not found: {path}"
                )
            resolved.append(str(path))
        out[split] = resolved
    if spec.eval_split not in out:
        raise ValueError(
            f"{spec.benchmark}: data_files needs a {spec.eval_split!r} split (known: {known})"
        )
    return out


def write_local_task(
    spec: TaskSpec, data_files: dict[str, list[str]], task_dir: Path, cache_dir: Path
) -> str:
    """Write `<task_dir>/mixmerge_<name>.yaml` re-pointing the built-in task; return its name."""
    import yaml

    base = lm_eval_tasks_dir() / spec.include
    if not base.is_file():
        raise ValueError(f"{spec.benchmark}: lm-eval has no built-in task file {base}")
    name = f"mixmerge_{spec.benchmark}"
    cfg: dict[str, Any] = {
        "include": str(base),
        "task": name,
        "tag": [],
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": data_files, "cache_dir": str(cache_dir)},
    }
    cfg.update({key: None for key in _ALL_SPLIT_KEYS})
    for split, keys in spec.split_keys.items():
        if split in data_files:
            cfg.update({key: split for key in keys})
    cfg.update(spec.overrides)
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return name


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


_ENV_INFO: dict[str, Any] = {}
_GIT_HASH: list[str | None] = []


def _git_hash_quietly() -> str | None:
    """lm-eval's git hash of the cwd, without the "fatal: not a git repository" that its own
    `git describe` prints into every job log when the cwd (a scratch dir) is not a checkout."""
    import subprocess

    from lm_eval.loggers.utils import get_commit_from_path

    try:
        proc = subprocess.run(
            ["git", "describe", "--always"], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:  # no git on this machine
        proc = None
    if proc is not None and proc.returncode == 0:
        return proc.stdout.strip()
    return get_commit_from_path(os.getcwd())


@contextlib.contextmanager
def _env_info_once() -> Iterator[None]:
    """Collect lm-eval's environment info (torch's collect_env: ~0.6 s of subprocesses) and git
    hash once, the latter quietly.

    simple_evaluate gathers both on every call, i.e. per benchmark; they cannot change within a
    process, so later calls get a copy of the first call's.
    """
    import lm_eval.evaluator as evaluator

    original_env, original_git = evaluator.add_env_info, evaluator.get_git_commit_hash

    def add_env_info(storage: dict[str, Any]) -> None:
        if not _ENV_INFO:
            original_env(_ENV_INFO)
        storage.update(_ENV_INFO)

    def get_git_commit_hash() -> str | None:
        if not _GIT_HASH:
            _GIT_HASH.append(_git_hash_quietly())
        return _GIT_HASH[0]

    evaluator.add_env_info, evaluator.get_git_commit_hash = add_env_info, get_git_commit_hash
    try:
        yield
    finally:
        evaluator.add_env_info, evaluator.get_git_commit_hash = original_env, original_git


# Where lm-eval 0.4.13 defines the built-in tasks and groups of SPECS (each declaration's
# `folders`, under lm_eval/tasks; minerva_math's group is in benchmarks/). Indexing only these
# takes 0.04 s where lm-eval's default index of all its ~12k task YAMLs takes 5.5 s, in every
# process; the task files loaded are the same (tests/evaluate/test_lm_eval_tasks.py checks both).
BUILTIN_TASK_FOLDERS = tuple(dict.fromkeys(f for spec in SPECS.values() for f in spec.folders))


@functools.cache
def _builtin_task_manager() -> Any:
    """lm-eval's index of the built-in tasks of SPECS, built once per process."""
    from importlib.resources import files

    from lm_eval.tasks import TaskManager

    root = Path(str(files("lm_eval") / "tasks"))
    return TaskManager(
        include_path=[str(root / f) for f in BUILTIN_TASK_FOLDERS], include_defaults=False
    )


def evaluate_task(ctx: EvalContext, benchmark: str, lm: Any = None) -> dict[str, Any]:
    """Run one benchmark through lm-eval; `lm` (an `lm_eval.api.model.LM`) replaces the model."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    spec = SPECS[benchmark]
    bench_cfg = ctx.bench_cfg or {}
    work_dir = Path(ctx.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)

    num_fewshot = bench_cfg.get("num_fewshot")
    num_fewshot = spec.num_fewshot if num_fewshot is None else int(num_fewshot)
    metric = bench_cfg.get("metric") or spec.metric
    filter_name = bench_cfg.get("filter") or spec.filter

    data_files = bench_cfg.get("data_files")
    if data_files:
        files = local_data_files(spec, data_files)
        if (
            num_fewshot > 0
            and spec.fewshot_splits
            and not any(s in files for s in spec.fewshot_splits)
        ):
            wanted = " or ".join(repr(s) for s in spec.fewshot_splits)
            raise ValueError(
                f"{benchmark}: num_fewshot={num_fewshot} needs a {wanted} split in data_files"
            )
        task_name = write_local_task(
            spec, files, work_dir / "lm_eval_tasks", work_dir / "hf_datasets"
        )
        task_manager = TaskManager(
            include_path=str(work_dir / "lm_eval_tasks"), include_defaults=False
        )
    else:
        task_name = spec.hub_task
        task_manager = _builtin_task_manager()

    limit = bench_cfg.get("limit")
    apply_chat_template = bench_cfg.get("apply_chat_template", False)
    kwargs: dict[str, Any] = {
        "tasks": [task_name],
        "task_manager": task_manager,
        "num_fewshot": num_fewshot,
        "limit": None if limit is None else (float(limit) if 0 < float(limit) < 1 else int(limit)),
        "gen_kwargs": dict(bench_cfg["gen_kwargs"]) if bench_cfg.get("gen_kwargs") else None,
        "log_samples": True,
        "apply_chat_template": apply_chat_template,
        "fewshot_as_multiturn": bool(apply_chat_template)
        and bench_cfg.get("fewshot_as_multiturn", True),
        "system_instruction": bench_cfg.get("system_instruction"),
    }
    backend, model_args = "custom", {}
    if lm is None:
        backend, model_args = lm_settings(ctx.model_dir, ctx.bench_cfg, ctx.eval_cfg, benchmark)
        lm = cached_lm(backend, model_args)
        # lm-eval's own request cache, one file per model digest and settings; every answer is
        # stored as it is computed (its cache hook), so a killed run keeps them
        kwargs["use_cache"] = ctx.generations.lm_eval_cache(
            backend, str(model_args["dtype"]), str(model_args.get("device", "cuda"))
        )
    kwargs["model"] = lm
    requests_before = getattr(lm, "requests_run", None)

    log.info("%s: lm-eval task %s, %d-shot, limit=%s", benchmark, task_name, num_fewshot, limit)
    # lm-eval writes relative to the cwd (work_dir); its built-in tasks name hub datasets, which
    # an active hub mirror serves.
    with _chdir(work_dir), _env_info_once(), mirrored_load_dataset():
        results = lm_eval.simple_evaluate(**kwargs)
    if results is None:  # non-zero rank under a distributed launcher
        raise RuntimeError(f"{benchmark}: lm-eval returned no results (not rank 0?)")
    record = score_record(
        ctx.samples,
        benchmark,
        task_name,
        results,
        metric,
        filter_name,
        num_fewshot,
        lm_eval.__version__,
    )
    if requests_before is not None:
        run = lm.requests_run - requests_before
        total = request_count(results, task_name, filter_name)
        ctx.generations.tally.generated += run
        ctx.generations.tally.cached += max(total - run, 0)
    record["settings"] = {
        "backend": backend,
        "model_args": model_args,
        "data_files": files if data_files else None,
        "limit": kwargs["limit"],
        "gen_kwargs": kwargs["gen_kwargs"],
        "apply_chat_template": kwargs["apply_chat_template"],
        "fewshot_as_multiturn": kwargs["fewshot_as_multiturn"],
        "system_instruction": kwargs["system_instruction"],
        "task_versions": results.get("versions", {}),
        "n_shot": results.get("n-shot", {}),
    }
    return record

"""lm-eval benchmarks (GSM8K, ARC-E/C, MMLU, MATH) on local files in the hub schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mixmerge.evaluate import lm_eval_tasks
from mixmerge.evaluate.registry import EvalContext, get_benchmark
from mixmerge.io import read_jsonl
from mixmerge.runtime import lm_eval_model
from mixmerge.tiny.lmeval_fixtures import write_lmeval_fixtures

BENCHMARKS = ["gsm8k", "arc_easy", "arc_challenge", "mmlu", "math"]
SPLITS = {
    "gsm8k": ["test", "train"],
    "arc_easy": ["test", "train", "validation"],
    "arc_challenge": ["test", "train", "validation"],
    "mmlu": ["dev", "test", "validation"],
    "math": ["test", "train"],
}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lmeval") / "benchmarks"
    write_lmeval_fixtures(out, n_items=6, seed=0)
    return out


def data_files(root: Path, name: str) -> dict[str, str]:
    return {split: str(root / name / f"{split}.jsonl") for split in SPLITS[name]}


def make_ctx(tmp_path: Path, model_dir: Path | str, name: str, **bench_cfg: Any) -> EvalContext:
    return EvalContext(
        model_dir=Path(model_dir),
        benchmark=name,
        bench_cfg=bench_cfg,
        eval_cfg={"device": "cpu", "batch_size": 4},
        work_dir=tmp_path / "work",
    )


# ---------------------------------------------------------------- fixture files


def test_fixture_files_have_hub_schemas(fixtures: Path) -> None:
    for name, splits in SPLITS.items():
        assert sorted(p.stem for p in (fixtures / name).glob("*.jsonl")) == splits
    for row in read_jsonl(fixtures / "gsm8k" / "test.jsonl"):
        assert set(row) == {"question", "answer"}
        steps, final = row["answer"].rsplit("\n#### ", 1)
        assert "<<" in steps and ">>" in steps and final.isdigit()
    for name in ("arc_easy", "arc_challenge"):
        for row in read_jsonl(fixtures / name / "validation.jsonl"):
            assert set(row) == {"id", "question", "choices", "answerKey"}
            assert set(row["choices"]) == {"text", "label"}
            assert (
                row["choices"]["label"] == ["A", "B", "C", "D"] and len(row["choices"]["text"]) == 4
            )
            assert row["answerKey"] in row["choices"]["label"]
    for row in read_jsonl(fixtures / "mmlu" / "test.jsonl"):
        assert set(row) == {"question", "subject", "choices", "answer"}
        assert len(row["choices"]) == 4 and row["answer"] in range(4)
    for row in read_jsonl(fixtures / "math" / "test.jsonl"):
        assert set(row) == {"problem", "level", "type", "solution"}
        assert "\\boxed{" in row["solution"] and row["level"].startswith("Level ")
    # few-shot source splits hold at least 5 rows; evaluated splits hold n_items
    assert len(read_jsonl(fixtures / "mmlu" / "dev.jsonl")) >= 5
    assert len(read_jsonl(fixtures / "gsm8k" / "test.jsonl")) == 6


def test_fixtures_are_deterministic(tmp_path: Path, fixtures: Path) -> None:
    write_lmeval_fixtures(tmp_path / "again", n_items=6, seed=0)
    write_lmeval_fixtures(tmp_path / "other", n_items=6, seed=1)
    same = (tmp_path / "again" / "gsm8k" / "test.jsonl").read_bytes()
    assert same == (fixtures / "gsm8k" / "test.jsonl").read_bytes()
    assert same != (tmp_path / "other" / "gsm8k" / "test.jsonl").read_bytes()


# ---------------------------------------------------------------- tiny model through lm-eval


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_on_tiny_model(
    name: str, fixtures: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    ctx = make_ctx(
        tmp_path,
        tiny_model_dir,
        name,
        data_files=data_files(fixtures, name),
        limit=3,
        gen_kwargs={"max_gen_toks": 8},
    )
    record = get_benchmark(name)(ctx)
    spec = lm_eval_tasks.SPECS[name]
    assert record["benchmark"] == name
    assert record["task"] == f"mixmerge_{name}"
    assert record["n"] == 3
    assert 0.0 <= record["score"] <= 100.0
    assert record["metric"] == f"{spec.metric},{spec.filter}"
    assert record["num_fewshot"] == spec.num_fewshot
    assert record["lm_eval_version"]
    json.dumps(record)  # the record is saved as JSON
    assert len(ctx.samples) == 3
    assert {s["doc_id"] for s in ctx.samples} == {0, 1, 2}
    for sample in ctx.samples:
        assert sample["benchmark"] == name and isinstance(sample["correct"], bool)
        assert ("response" in sample) == (name in ("gsm8k", "math"))
    json.dumps(ctx.samples)
    # the generated task YAML re-points the built-in task at the local files
    task_yaml = (ctx.work_dir / "lm_eval_tasks" / f"mixmerge_{name}.yaml").read_text()
    assert "dataset_path: json" in task_yaml and spec.include in task_yaml


def test_gsm8k_on_real_upstream_rows(upstream: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    test_file, train_file = (
        upstream / "gsm8k" / "test.head30.jsonl",
        upstream / "gsm8k" / "train.head10.jsonl",
    )
    if not (test_file.is_file() and train_file.is_file()):
        pytest.skip("upstream gsm8k samples not present")
    ctx = make_ctx(
        tmp_path,
        tiny_model_dir,
        "gsm8k",
        data_files={"train": str(train_file), "test": str(test_file)},
        limit=4,
        gen_kwargs={"max_gen_toks": 8},
    )
    record = lm_eval_tasks.run(ctx)
    assert record["n"] == 4 and record["num_fewshot"] == 5
    assert 0.0 <= record["score"] <= 100.0
    assert ctx.samples[0]["target"].endswith("#### 18")  # Janet's ducks


# ---------------------------------------------------------------- scoring with a scripted model


class ScriptedLM:
    """An lm-eval LM that answers from the document: the gold choice / a given reply."""

    def __new__(cls, reply=None):
        from lm_eval.api.model import LM

        class _Scripted(LM):
            def loglikelihood(self, requests):
                out = []
                for req in requests:
                    doc = req.doc
                    if "answerKey" in doc:
                        gold = doc["choices"]["label"].index(doc["answerKey"])
                    else:
                        gold = int(doc["answer"])
                    out.append((0.0 if req.idx == gold else -10.0, req.idx == gold))
                return out

            def loglikelihood_rolling(self, requests):
                return [0.0 for _ in requests]

            def generate_until(self, requests):
                return [reply(req.doc) for req in requests]

        return _Scripted()


def gold_reply(doc: dict[str, Any]) -> str:
    if "question" in doc:  # gsm8k: the reference solution, ending in "#### N"
        return " " + doc["answer"]
    return f" {doc['solution']}\nFinal Answer: The final answer is ${doc['answer']}$. I hope it is correct."


@pytest.mark.parametrize("name", BENCHMARKS)
def test_right_answers_score_100(name: str, fixtures: Path, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "unused", name, data_files=data_files(fixtures, name))
    record = lm_eval_tasks.evaluate_task(ctx, name, lm=ScriptedLM(gold_reply))
    assert record["score"] == pytest.approx(100.0)
    assert record["n"] == 6
    assert all(s["correct"] for s in ctx.samples)


def test_gsm8k_filters(fixtures: Path, tmp_path: Path) -> None:
    """flexible-extract (default) takes the last number; strict-match needs '#### N'."""

    def plain(doc: dict[str, Any]) -> str:
        return f" So the answer is {doc['answer'].rsplit('#### ', 1)[1]}."

    ctx = make_ctx(tmp_path, "unused", "gsm8k", data_files=data_files(fixtures, "gsm8k"))
    record = lm_eval_tasks.evaluate_task(ctx, "gsm8k", lm=ScriptedLM(plain))
    assert record["metric"] == "exact_match,flexible-extract"
    assert record["score"] == pytest.approx(100.0)
    assert record["all_metrics"]["exact_match,strict-match"] == pytest.approx(0.0)
    # the extracted "34." is compared after lm-eval's exact_match drops the trailing period
    assert ctx.samples[0]["answer"].rstrip(".") == ctx.samples[0]["target"].rsplit("#### ", 1)[1]

    ctx = make_ctx(
        tmp_path,
        "unused",
        "gsm8k",
        data_files=data_files(fixtures, "gsm8k"),
        filter="strict-match",
        limit=2,
    )
    record = lm_eval_tasks.evaluate_task(ctx, "gsm8k", lm=ScriptedLM(plain))
    assert record["metric"] == "exact_match,strict-match" and record["score"] == 0.0
    assert record["n"] == 2


def test_unknown_metric_is_reported(fixtures: Path, tmp_path: Path) -> None:
    ctx = make_ctx(
        tmp_path,
        "unused",
        "arc_easy",
        data_files=data_files(fixtures, "arc_easy"),
        metric="f1",
        limit=1,
    )
    with pytest.raises(
        ValueError, match=r"no metric 'f1,none' \(available: \['acc,none', 'acc_norm,none'\]\)"
    ):
        lm_eval_tasks.evaluate_task(ctx, "arc_easy", lm=ScriptedLM(gold_reply))


# ---------------------------------------------------------------- config errors


def test_missing_data_file(tmp_path: Path, fixtures: Path) -> None:
    files = data_files(fixtures, "gsm8k") | {"test": str(tmp_path / "nope.jsonl")}
    ctx = make_ctx(tmp_path, "unused", "gsm8k", data_files=files)
    with pytest.raises(
        ValueError, match=r"gsm8k: data file for split 'test' not found: .*nope\.jsonl"
    ):
        lm_eval_tasks.run(ctx)


def test_unknown_split(tmp_path: Path, fixtures: Path) -> None:
    files = data_files(fixtures, "mmlu") | {"train": str(fixtures / "mmlu" / "dev.jsonl")}
    with pytest.raises(
        ValueError, match=r"mmlu: unknown split 'train' in data_files \(known: dev, validation, test\)"
    ):
        lm_eval_tasks.run(make_ctx(tmp_path, "unused", "mmlu", data_files=files))


def test_missing_test_or_fewshot_split(tmp_path: Path, fixtures: Path) -> None:
    train_only = {"train": str(fixtures / "gsm8k" / "train.jsonl")}
    with pytest.raises(ValueError, match="needs a 'test' split"):
        lm_eval_tasks.run(make_ctx(tmp_path, "unused", "gsm8k", data_files=train_only))
    test_only = {"test": str(fixtures / "gsm8k" / "test.jsonl")}
    with pytest.raises(ValueError, match=r"num_fewshot=5 needs a 'train' split"):
        lm_eval_tasks.run(make_ctx(tmp_path, "unused", "gsm8k", data_files=test_only))


def test_math_needs_only_a_test_file(tmp_path: Path, fixtures: Path) -> None:
    """minerva_math's 4 shots are built into lm-eval, so one local test file is enough."""
    ctx = make_ctx(
        tmp_path,
        "unused",
        "math",
        data_files={"test": str(fixtures / "math" / "test.jsonl")},
        limit=2,
    )
    record = lm_eval_tasks.evaluate_task(ctx, "math", lm=ScriptedLM(gold_reply))
    assert record["num_fewshot"] == 4 and record["score"] == pytest.approx(100.0)


def test_hub_group_is_scored_over_its_subtasks(
    fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without data_files the built-in task/group runs; MMLU and MATH are groups of subtasks.

    The hub cannot be reached here, so a two-subtask local group stands in for `mmlu`.
    """
    import dataclasses
    import functools

    import lm_eval.tasks
    import yaml

    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    template = lm_eval_tasks.lm_eval_tasks_dir() / "mmlu/default/_default_template_yaml"
    rows = read_jsonl(fixtures / "mmlu" / "test.jsonl")
    for part, chunk in (("a", rows[:4]), ("b", rows[4:])):
        (task_dir / f"test_{part}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chunk))
        (task_dir / f"tiny_mmlu_{part}.yaml").write_text(
            yaml.safe_dump(
                {
                    "include": str(template),
                    "task": f"tiny_mmlu_{part}",
                    "dataset_path": "json",
                    "dataset_name": None,
                    "dataset_kwargs": {
                        "data_files": {
                            "test": str(task_dir / f"test_{part}.jsonl"),
                            "dev": str(fixtures / "mmlu" / "dev.jsonl"),
                        }
                    },
                }
            )
        )
    (task_dir / "tiny_mmlu.yaml").write_text(
        yaml.safe_dump(
            {
                "group": "tiny_mmlu",
                "task": ["tiny_mmlu_a", "tiny_mmlu_b"],
                "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}],
            }
        )
    )
    monkeypatch.setitem(
        lm_eval_tasks.SPECS,
        "mmlu",
        dataclasses.replace(lm_eval_tasks.SPECS["mmlu"], hub_task="tiny_mmlu"),
    )
    monkeypatch.setattr(
        lm_eval_tasks,
        "_builtin_task_manager",
        functools.partial(
            lm_eval.tasks.TaskManager, include_path=str(task_dir), include_defaults=False
        ),
    )

    def half_right(requests):  # right on subtask a only
        return [
            (
                0.0
                if (req.idx == req.doc["answer"]) == (req.task_name == "tiny_mmlu_a")
                else -10.0,
                False,
            )
            for req in requests
        ]

    lm = ScriptedLM(gold_reply)
    monkeypatch.setattr(lm, "loglikelihood", half_right)
    ctx = make_ctx(tmp_path, "unused", "mmlu")
    record = lm_eval_tasks.evaluate_task(ctx, "mmlu", lm=lm)
    assert record["task"] == "tiny_mmlu" and record["n"] == len(rows)
    assert record["score"] == pytest.approx(100.0 * 4 / len(rows))  # weighted by subtask size
    assert {s["task"] for s in ctx.samples} == {"tiny_mmlu_a", "tiny_mmlu_b"}


# ---------------------------------------------------------------- partial credit, fixed outputs


class HalfRightLM:
    """Right on even doc ids, wrong on odd ones, for every output type."""

    def __new__(cls):
        from lm_eval.api.model import LM

        class _Half(LM):
            def loglikelihood(self, requests):
                out = []
                for req in requests:
                    doc = req.doc
                    if "answerKey" in doc:
                        gold = doc["choices"]["label"].index(doc["answerKey"])
                    else:
                        gold = int(doc["answer"])
                    want = gold if req.doc_id % 2 == 0 else (gold + 1) % 4
                    out.append((0.0 if req.idx == want else -10.0, req.idx == want))
                return out

            def loglikelihood_rolling(self, requests):
                return [0.0 for _ in requests]

            def generate_until(self, requests):
                replies = []
                for req in requests:
                    doc, right = req.doc, req.doc_id % 2 == 0
                    if "question" in doc:  # gsm8k: the last number of the reply is extracted
                        gold = doc["answer"].rsplit("#### ", 1)[1]
                        number = gold if right else str(int(gold) + 7)
                        replies.append(f" First 3 steps, then {number} in total.")
                    else:  # minerva math: the "final answer is $...$" sentence is extracted
                        answer = doc["answer"] if right else f"{doc['answer']}1"
                        replies.append(
                            f" Work.\nFinal Answer: The final answer is ${answer}$. "
                            "I hope it is correct."
                        )
                return replies

        return _Half()


@pytest.mark.parametrize("name", BENCHMARKS)
def test_fixed_outputs_give_expected_scores(name: str, fixtures: Path, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "unused", name, data_files=data_files(fixtures, name))
    record = lm_eval_tasks.evaluate_task(ctx, name, lm=HalfRightLM())
    assert record["n"] == 6
    assert record["score"] == pytest.approx(50.0)
    assert [s["correct"] for s in sorted(ctx.samples, key=lambda s: s["doc_id"])] == [
        True,
        False,
    ] * 3
    if name == "gsm8k":  # the extracted answer is the last number of the reply
        assert all(s["answer"] in s["response"] for s in ctx.samples)
    assert record["settings"]["backend"] == "custom"


# ---------------------------------------------------------------- backends and the LM cache


def test_one_model_load_per_process(fixtures: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """Every benchmark's HFLM wraps the one model of generation's per-process cache."""
    from mixmerge.runtime import generation

    models = []
    for name in ("arc_easy", "mmlu"):
        ctx = make_ctx(
            tmp_path, tiny_model_dir, name, data_files=data_files(fixtures, name), limit=1
        )
        backend, args = lm_eval_model.lm_settings(ctx.model_dir, ctx.bench_cfg, ctx.eval_cfg, ctx.benchmark)
        models.append(lm_eval_model.cached_lm(backend, args).model)
        record = lm_eval_tasks.evaluate_task(ctx, name)
        assert record["settings"]["backend"] == "hf"
        assert record["settings"]["model_args"]["pretrained"] == str(tiny_model_dir.resolve())
        assert record["settings"]["limit"] == 1
    model, _ = generation.load_hf_model(tiny_model_dir, "cpu", "auto")
    assert models[0] is models[1] is model


def test_backend_settings(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "some/model", "gsm8k")
    ctx.eval_cfg = {
        "device": "cuda",
        "batch_size": 16,
        "generation": {"backend": "vllm", "gpu_memory_utilization": 0.5, "max_model_len": 4096},
    }
    backend, args = lm_eval_model.lm_settings(ctx.model_dir, ctx.bench_cfg, ctx.eval_cfg, ctx.benchmark)
    assert backend == "vllm"
    assert args == {
        "pretrained": "some/model",
        "dtype": "auto",
        "batch_size": "auto",
        "tensor_parallel_size": 1,
        "gpu_memory_utilization": 0.5,
        "seed": 0,
        "max_model_len": 4096,
    }
    ctx.eval_cfg["generation"]["backend"] = "tgi"
    with pytest.raises(ValueError, match=r"gsm8k: unknown generation backend 'tgi'"):
        lm_eval_model.lm_settings(ctx.model_dir, ctx.bench_cfg, ctx.eval_cfg, ctx.benchmark)


def test_vllm_backend_needs_vllm(tmp_path: Path) -> None:
    pytest.importorskip("lm_eval")
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed")
    with pytest.raises(ImportError, match="generation backend 'vllm' needs the vllm package"):
        lm_eval_model.cached_lm("vllm", {"pretrained": str(tmp_path)})


def test_the_builtin_index_loads_lm_evals_own_task_files() -> None:
    """mixmerge indexes only the folders of its five built-in tasks (0.03 s, not 5.5 s per
    process); every task and group it finds is the same file and config as in lm-eval's own
    index of all its tasks."""
    from lm_eval.tasks import TaskManager

    from mixmerge.evaluate.lm_eval_tasks import SPECS, _builtin_task_manager

    full = TaskManager().task_index
    mine = _builtin_task_manager().task_index
    assert {spec.hub_task for spec in SPECS.values()} <= set(mine)
    files = {name: entry for name, entry in mine.items() if entry.yaml_path is not None}
    assert len(files) > 57 + 7  # the MMLU subjects and MATH subjects are among them
    for name, entry in files.items():
        assert full[name].yaml_path.resolve() == entry.yaml_path.resolve(), name
        assert full[name].cfg == entry.cfg, name


def test_truthfulqa_mc2_scores_the_true_answers_mass(fixtures: Path, tmp_path: Path) -> None:
    """TruthfulQA MC2 through lm-eval's own task on the tiny fixtures: a model putting all its
    likelihood on the true answers scores 100, one splitting it evenly over 2 true and 3 false
    answers scores 40, and the per-item values (a share, not a 0/1 hit) give back the score the
    report's bootstrap resamples. (The tiny model runs it in the SLURM slice and the tiny DAG.)"""
    from mixmerge.report.stats import score_of, units

    files = {"validation": str(fixtures / "truthfulqa_mc2" / "validation.jsonl")}
    for row in read_jsonl(files["validation"]):
        assert set(row) == {"question", "mc1_targets", "mc2_targets"}

    class Split:
        def __new__(cls, even: bool):
            from lm_eval.api.model import LM

            class _Split(LM):
                def loglikelihood(self, requests):
                    out = []
                    for req in requests:
                        labels = req.doc["mc2_targets"]["labels"]
                        good = even or labels[req.idx] == 1
                        out.append((0.0 if good else -50.0, good))
                    return out

                def loglikelihood_rolling(self, requests):
                    return [0.0 for _ in requests]

                def generate_until(self, requests):
                    return ["" for _ in requests]

            return _Split()

    for even, expected in ((False, 100.0), (True, 40.0)):
        ctx = make_ctx(tmp_path, "unused", "truthfulqa_mc2", data_files=files)
        record = lm_eval_tasks.evaluate_task(ctx, "truthfulqa_mc2", lm=Split(even))
        assert record["metric"] == "acc,none" and record["n"] == 6
        assert record["score"] == pytest.approx(expected)
        assert score_of("truthfulqa_mc2", units("truthfulqa_mc2", ctx.samples)) == pytest.approx(
            record["score"]
        )
    wrong = {"test": files["validation"]}  # TruthfulQA has one split, validation
    with pytest.raises(ValueError, match="unknown split 'test' in data_files"):
        lm_eval_tasks.run(make_ctx(tmp_path, "unused", "truthfulqa_mc2", data_files=wrong))

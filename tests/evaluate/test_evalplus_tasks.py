"""HumanEval+ / MBPP+ through evalplus: fixtures, prompts, sanitizer, sandbox and scoring."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mixmerge.evaluate import evalplus_tasks as ep
from mixmerge.evaluate.registry import EvalContext
from mixmerge.io import read_jsonl
from mixmerge.tiny.evalplus_fixtures import write_evalplus_fixtures

BENCHMARKS = ["humaneval_plus", "mbpp_plus"]
FILES = {
    "humaneval_plus": "humaneval_plus/HumanEvalPlus.jsonl",
    "mbpp_plus": "mbpp_plus/MbppPlus.jsonl",
}
UPSTREAM_FILES = {
    "humaneval_plus": "evalplus/HumanEvalPlus-v0.1.10.head10.jsonl",
    "mbpp_plus": "evalplus/MbppPlus-v0.2.0.head10.jsonl",
}
# short sandbox limits keep the timeout cases fast; still far above the fixtures' run times
FAST = {"min_time_limit": 0.2, "max_memory_mb": 512, "parallel": 2}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evalplus") / "benchmarks"
    write_evalplus_fixtures(out, n_items=6, seed=0)
    return out


def make_ctx(tmp_path: Path, model_dir: Path | str, name: str, **bench_cfg: Any) -> EvalContext:
    return EvalContext(
        model_dir=Path(model_dir),
        benchmark=name,
        bench_cfg=bench_cfg,
        eval_cfg={"device": "cpu", "generation": {"backend": "hf", "max_new_tokens": 16}},
        work_dir=tmp_path / "work",
    )


def scripted(replies: Callable[[str, dict[str, Any]], str], problems: dict[str, dict]):
    """A generate function answering each problem (in order) with replies(task_id, problem)."""

    def generate(task_prompts: list[str]) -> list[str]:
        assert task_prompts == [p["prompt"] for p in problems.values()]
        return [replies(task_id, p) for task_id, p in problems.items()]

    return generate


def canonical(task_id: str, problem: dict[str, Any]) -> str:
    # what a chat model continuing "```python\n" writes: code, closing fence, then prose
    return f"{problem['prompt'].strip()}\n{problem['canonical_solution']}\n```\n\nThis solves it."


# ---------------------------------------------------------------- fixture files


def test_fixture_fields_match_the_real_release(fixtures: Path, upstream: Path) -> None:
    for name in BENCHMARKS:
        real = upstream / UPSTREAM_FILES[name]
        if not real.is_file():
            pytest.skip(f"{real} not present")
        for row in read_jsonl(fixtures / FILES[name]):
            assert list(row) == list(read_jsonl(real)[0])  # same fields, same order


def test_fixture_files_have_release_schema(fixtures: Path) -> None:
    for name in BENCHMARKS:
        ours = read_jsonl(fixtures / FILES[name])
        assert len(ours) == 6
        for row in ours:
            assert set(ep.REQUIRED_KEYS) <= set(row)
            assert isinstance(row["base_input"], list) and isinstance(row["plus_input"], list)
            assert all(isinstance(inp, list) for inp in row["base_input"] + row["plus_input"])
            assert "# $_CONTRACT_$" in row["contract"]
            # every problem has extra inputs the base tests do not cover
            assert any(inp not in row["base_input"] for inp in row["plus_input"])
        assert len({row["task_id"] for row in ours}) == 6


def test_fixture_ids_and_deserialization(fixtures: Path) -> None:
    he = read_jsonl(fixtures / FILES["humaneval_plus"])
    assert [r["task_id"] for r in he] == [f"HumanEval/{i}" for i in range(6)]
    assert all(r["prompt"].lstrip().startswith("def ") for r in he)
    mbpp = read_jsonl(fixtures / FILES["mbpp_plus"])
    assert all(int(r["task_id"].split("/")[1]) > 809 for r in mbpp)  # no special-cased ids
    assert all(r["prompt"].startswith('"""\nWrite a function') for r in mbpp)
    assert all(r["assertion"].count("assert ") == len(r["base_input"]) for r in mbpp)


def test_fixtures_are_deterministic(tmp_path: Path, fixtures: Path) -> None:
    write_evalplus_fixtures(tmp_path / "again", n_items=6, seed=0)
    write_evalplus_fixtures(tmp_path / "other", n_items=6, seed=1)
    for rel in FILES.values():
        same = (tmp_path / "again" / rel).read_bytes()
        assert same == (fixtures / rel).read_bytes()
        assert same != (tmp_path / "other" / rel).read_bytes()
    write_evalplus_fixtures(tmp_path / "many", n_items=13, seed=0)  # more than the templates
    names = [r["entry_point"] for r in read_jsonl(tmp_path / "many" / FILES["mbpp_plus"])]
    assert len(set(names)) == 13


# ---------------------------------------------------------------- prompt and reply handling


def test_chat_prompt_is_evalplus_prompt(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = '\n\ndef add(a: int, b: int) -> int:\n    """ Add. """\n'
    text = ep.chat_prompt(prompt, tokenizer)
    user = f"{ep.INSTRUCTION_PREFIX}\n```\n{prompt.strip()}\n```\n"
    head = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False)
    assert text == f"{head}<|assistant|>\n{ep.RESPONSE_PREFIX}\n```python\n"
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="need a chat model"):
        ep.chat_prompt(prompt, tokenizer)


def test_clean_reply_and_sanitize() -> None:
    from evalplus.sanitize import sanitize

    reply = "def f(x):\n\treturn x + 1\n```\n\nprint(f(1))\nMore prose."
    assert ep.clean_reply(reply) == "def f(x):\n    return x + 1"
    chatty = "Sure! Here it is:\n\nimport math\n\ndef f(x):\n    return x + 1\n\nDone, bye."
    assert sanitize(ep.clean_reply(chatty), "f") == "import math\ndef f(x):\n    return x + 1"


# ---------------------------------------------------------------- scoring


@pytest.mark.parametrize("name", BENCHMARKS)
def test_canonical_solutions_score_100(name: str, fixtures: Path, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "unused", name, data_files=str(fixtures / FILES[name]), **FAST)
    problems, _, _ = ep.load_problems(name, str(fixtures / FILES[name]))
    record = ep.evaluate_benchmark(ctx, name, generate=scripted(canonical, problems))
    assert record["score"] == 100.0 and record["base_score"] == 100.0
    assert record["n"] == 6 and record["metric"] == "pass@1 (base + extra tests)"
    assert record["evalplus_version"] and record["data_md5"]
    assert record["prompt"]["instruction_prefix"] == ep.INSTRUCTION_PREFIX
    json.dumps(record)
    assert [s["task_id"] for s in ctx.samples] == list(problems)
    for sample in ctx.samples:
        assert sample["correct"] and sample["base_status"] == sample["plus_status"] == "pass"
        assert sample["prompt"] == problems[sample["task_id"]]["prompt"]
        assert "```" not in sample["solution"]
        assert sample["output"].endswith("This solves it.")
    json.dumps(ctx.samples)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_wrong_solutions_score_0(name: str, fixtures: Path, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "unused", name, data_files=str(fixtures / FILES[name]), **FAST)
    problems, _, _ = ep.load_problems(name, str(fixtures / FILES[name]))

    def wrong(task_id: str, problem: dict[str, Any]) -> str:
        return f"```python\ndef {problem['entry_point']}(*args):\n    return None\n```"

    record = ep.evaluate_benchmark(ctx, name, generate=scripted(wrong, problems))
    assert record["score"] == 0.0 and record["base_score"] == 0.0 and record["n"] == 6
    assert not any(s["correct"] for s in ctx.samples)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_real_upstream_canonical_solutions_score_100(
    name: str, upstream: Path, tmp_path: Path
) -> None:
    path = upstream / UPSTREAM_FILES[name]
    if not path.is_file():
        pytest.skip(f"{path} not present")
    problems, _, _ = ep.load_problems(name, {"test": str(path)})
    assert len(problems) == 10
    ctx = make_ctx(tmp_path, "unused", name, data_files={"test": str(path)}, parallel=2)
    record = ep.evaluate_benchmark(ctx, name, generate=scripted(canonical, problems))
    assert record["score"] == 100.0 and record["n"] == 10
    if name == "mbpp_plus":  # evalplus's deserialization ran (Mbpp/2 takes tuples)
        assert isinstance(problems["Mbpp/2"]["base_input"][0][0], tuple)


def _base_only(task_id: str, problem: dict[str, Any]) -> str:
    """Right on the base inputs (a lookup table), None on anything else."""
    scope: dict[str, Any] = {}
    exec(problem["prompt"] + problem["canonical_solution"], scope)
    fn = scope[problem["entry_point"]]
    table = {repr(list(inp)): fn(*inp) for inp in problem["base_input"]}
    return (
        f"def {problem['entry_point']}(*args):\n"
        f"    table = {table!r}\n"
        "    return table.get(repr(list(args)))\n"
    )


BAD = {  # kind -> body of the entry point
    "wrong": "    return None\n",
    "loop": "    while True:\n        pass\n",
    "c_loop": "    import itertools\n    return sum(itertools.repeat(1))\n",  # ignores SIGALRM
    "memory_bomb": "    hog = []\n    while True:\n        hog.append(b'x' * (64 * 2**20))\n",
    "syntax": "    return (\n",
}


def test_wrong_base_only_and_hostile_solutions(tmp_path: Path) -> None:
    name = "humaneval_plus"
    kinds = ["canonical", "canonical_100mb", "base_only", *BAD]
    path = write_evalplus_fixtures(tmp_path / "fixtures", n_items=len(kinds), seed=0)[name]
    problems, _, _ = ep.load_problems(name, str(path))
    assert len(kinds) == len(problems)
    by_task = dict(zip(problems, kinds, strict=True))

    def reply(task_id: str, problem: dict[str, Any]) -> str:
        kind = by_task[task_id]
        if kind == "canonical":
            return canonical(task_id, problem)
        if kind == "base_only":
            return _base_only(task_id, problem)
        if kind == "canonical_100mb":  # well under max_memory_mb: the limit leaves room to work
            hog = "_hog = b'x' * (100 * 2**20)  # at import: outside the per-call time limit\n"
            use = "    assert len(_hog) == 100 * 2**20\n"  # keeps it past the sanitizer
            return hog + problem["prompt"] + use + problem["canonical_solution"]
        args = problem["prompt"].split("(", 1)[1].split(")", 1)[0]
        return f"def {problem['entry_point']}({args}):\n{BAD[kind]}"

    ctx = make_ctx(tmp_path, "unused", name, data_files=str(path), **FAST)
    record = ep.evaluate_benchmark(ctx, name, generate=scripted(reply, problems))
    status = {by_task[s["task_id"]]: (s["base_status"], s["plus_status"]) for s in ctx.samples}
    assert status["canonical"] == status["canonical_100mb"] == ("pass", "pass")
    (hogging,) = [s["solution"] for s in ctx.samples if by_task[s["task_id"]] == "canonical_100mb"]
    assert hogging.startswith("_hog = b'x' * (100 * 2**20)")
    assert status["base_only"] == ("pass", "fail")  # passes base tests, fails the "+" score
    for kind in ("wrong", "syntax", "memory_bomb"):  # the bomb hits max_memory_mb: MemoryError
        assert status[kind] == ("fail", "fail"), kind
    assert status["loop"] == ("fail", "fail")  # interrupted by the per-input time limit
    assert status["c_loop"] == ("timeout", "timeout")  # deaf to signals: the process is killed
    assert record["score"] == pytest.approx(100.0 * 2 / 8)
    assert record["base_score"] == pytest.approx(100.0 * 3 / 8)
    assert record["status_counts"]["plus"]["pass"] == 2


def test_ground_truth_cache(fixtures: Path, tmp_path: Path) -> None:
    name = "mbpp_plus"
    path = str(fixtures / FILES[name])
    problems, _, md5 = ep.load_problems(name, path)
    cache = tmp_path / "gt"
    for _ in range(2):
        ctx = make_ctx(tmp_path, "unused", name, data_files=path, cache_dir=str(cache), limit=2)
        record = ep.evaluate_benchmark(
            ctx, name, generate=scripted(canonical, dict(list(problems.items())[:2]))
        )
        assert record["score"] == 100.0 and record["n"] == 2
    (cached,) = cache.glob(f"{md5}-evalplus*.pkl")
    assert cached.stat().st_size > 0


# ---------------------------------------------------------------- the tiny model end to end


def test_tiny_model_generates_and_is_scored(
    fixtures: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    name = "mbpp_plus"
    ctx = make_ctx(
        tmp_path, tiny_model_dir, name, data_files=str(fixtures / FILES[name]), limit=2, **FAST
    )
    record = ep.run(ctx)
    assert record["n"] == 2 and 0.0 <= record["score"] <= 100.0
    assert record["generation"]["temperature"] == 0.0
    assert record["generation"]["backend"] == "hf"
    for sample in ctx.samples:
        assert sample["prompt"].endswith(f"{ep.RESPONSE_PREFIX}\n```python\n")
        assert isinstance(sample["output"], str) and isinstance(sample["solution"], str)
        assert sample["base_status"] in ("pass", "fail", "timeout")


# ---------------------------------------------------------------- config errors


def test_config_errors(fixtures: Path, tmp_path: Path) -> None:
    good = str(fixtures / FILES["humaneval_plus"])
    with pytest.raises(ValueError, match=r"humaneval_plus: data file not found: .*nope\.jsonl"):
        ep.load_problems("humaneval_plus", str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match=r"data_files must be a path or \{test: path\}"):
        ep.load_problems("humaneval_plus", {"train": good})
    bad = tmp_path / "bad.jsonl"
    row = read_jsonl(good)[0]
    bad.write_text(json.dumps({k: v for k, v in row.items() if k != "plus_input"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1 lacks plus_input"):
        ep.load_problems("humaneval_plus", str(bad))
    with pytest.raises(ValueError, match=r"task_id 'HumanEval/0' is not Mbpp/<int>"):
        ep.load_problems("mbpp_plus", good)
    ctx = make_ctx(
        tmp_path, "unused", "humaneval_plus", data_files=good, generation={"temperature": 0.7}
    )
    with pytest.raises(ValueError, match="generation.temperature must be 0"):
        ep.run(ctx)
    ctx = make_ctx(tmp_path, "unused", "humaneval_plus", data_files=good, max_memory_mb=0)
    with pytest.raises(ValueError, match="max_memory_mb must be > 0"):
        ep.run(ctx)

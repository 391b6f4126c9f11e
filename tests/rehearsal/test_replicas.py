"""The rehearsal mirror's replicas: complete for both paper configs, hub-shaped, readable by the
code that reads the real repos (mixmerge's loaders and benchmark readers, lm-eval, transformers).

The mirror is built once per module (a few seconds); tests are skipped without
../shared/upstream-samples (the real benchmark files the URL replicas copy)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "upstream-samples"
PAPER = [
    REPO / "config" / "paper" / "llama3-8b.yaml",
    REPO / "config" / "paper" / "mistral-7b.yaml",
]

pytestmark = pytest.mark.skipif(
    not SAMPLES.is_dir() and not os.environ.get("MIXMERGE_UPSTREAM_SAMPLES"),
    reason="needs ../shared/upstream-samples",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from mixmerge.rehearsal import build_mirror

    return build_mirror(tmp_path_factory.mktemp("rehearsal") / "mirror", PAPER)


@pytest.fixture(scope="module")
def mirror(built: dict) -> Path:
    return Path(built["mirror"])


def _artifacts():
    from mixmerge.rehearsal import paper_artifacts

    return paper_artifacts(PAPER)


def _repo(mirror: Path, kind: str, ident: str) -> Path:
    from mixmerge.hub import local_path

    return local_path(mirror, kind, ident)


# ------------------------------------------------------------------ the mirror as a whole


def test_every_artifact_of_both_paper_configs_is_in_the_manifest(built: dict, mirror: Path):
    from mixmerge.config import load
    from mixmerge.fetch import check_mirror, config_artifacts
    from mixmerge.hub import read_manifest

    manifest = read_manifest(mirror)
    for config in PAPER:
        arts = config_artifacts(load(str(config)))
        assert arts
        for art in arts:
            assert art.key in manifest, art.describe()
            assert art.key in built["artifacts"]
            record = manifest[art.key]
            if art.kind == "url":
                assert len(record["sha256"]) == 64
            else:
                assert len(record["commit"]) == 40 and record["revision"] is None
        # files as recorded, URL sha256 as the config pins (MT-Bench): no problems
        assert check_mirror(arts, mirror, subsets=False) == []
        # config names and splits each artifact is read with (cais/mmlu: see the lm-eval test)
        assert check_mirror([a for a in arts if a.id != "cais/mmlu"], mirror) == []


def test_rebuild_skips_unchanged_artifacts(built: dict, mirror: Path):
    from mixmerge.hub import read_manifest
    from mixmerge.rehearsal import build_mirror

    before = read_manifest(mirror)
    again = build_mirror(mirror, PAPER)
    assert not any(a["built"] for a in again["artifacts"].values())
    assert read_manifest(mirror) == before


def test_a_real_mirror_is_not_overwritten(tmp_path: Path):
    from mixmerge.hub import write_manifest
    from mixmerge.rehearsal import RehearsalError, build_mirror

    real = tmp_path / "real-mirror"
    write_manifest(real, {"model:meta-llama/Meta-Llama-3-8B-Instruct": {"kind": "model"}})
    with pytest.raises(RehearsalError, match="did not write"):
        build_mirror(real, PAPER)


def test_replicas_are_deterministic(tmp_path: Path):
    from mixmerge.rehearsal import REGISTRY
    from mixmerge.rehearsal.common import folder_commit

    for key in (
        "model:mistralai/Mistral-7B-Instruct-v0.2",
        "dataset:Columbia-NLP/DPO-PKU-SafeRLHF",
    ):
        commits = []
        for run in ("a", "b"):
            folder = tmp_path / run / key.replace("/", "_").replace(":", "_")
            folder.mkdir(parents=True)
            REGISTRY[key].build(folder, 0)
            commits.append(folder_commit(folder))
        assert commits[0] == commits[1], key


def test_an_artifact_without_a_builder_is_named(tmp_path: Path):
    from mixmerge.rehearsal import RehearsalError, build_mirror

    config = yaml.safe_load(PAPER[0].read_text())
    config["base_model"]["path"] = "someone/Unknown-Model-7B"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(RehearsalError, match="someone/Unknown-Model-7B"):
        build_mirror(tmp_path / "mirror", [path])


def test_missing_upstream_samples_is_a_clear_error(tmp_path: Path, monkeypatch):
    from mixmerge.rehearsal import REGISTRY, RehearsalError
    from mixmerge.rehearsal.urls import FASTCHAT

    monkeypatch.setenv("MIXMERGE_UPSTREAM_SAMPLES", str(tmp_path / "nowhere"))
    with pytest.raises(RehearsalError, match="MIXMERGE_UPSTREAM_SAMPLES"):
        REGISTRY[f"url:{FASTCHAT}/judge_prompts.jsonl"].build(tmp_path / "judge_prompts.jsonl", 0)


# ------------------------------------------------------------------ training datasets


def _load(mirror: Path, ds_cfg: dict):
    import datasets

    folder = str(_repo(mirror, "dataset", ds_cfg["path"]))
    split = ds_cfg.get("split", "train")
    assert split in datasets.get_dataset_split_names(folder, ds_cfg.get("name"))
    return datasets.load_dataset(folder, ds_cfg.get("name"), split=split)


def test_every_training_dataset_converts_with_its_configured_split(mirror: Path):
    from mixmerge.config import load
    from mixmerge.data.loaders import LOADERS, REQUIRED_FIELDS

    for config in PAPER:
        for name, ds_cfg in load(str(config))["datasets"].items():
            rows = list(_load(mirror, ds_cfg))
            assert len(rows) >= 16, name
            loader = ds_cfg["loader"]
            pairs = []
            for row in rows:
                assert all(row[f] is not None for f in REQUIRED_FIELDS[loader]), name
                pairs += list(LOADERS[loader](row))
            assert len(pairs) >= len(rows) // 2, name
            for prompt, chosen, rejected in pairs:
                assert prompt and prompt[-1]["role"] == "user", name
                assert isinstance(chosen, str) and isinstance(rejected, str), name


def test_training_sets_keep_the_quirks_of_the_real_data(mirror: Path):
    import datasets

    def rows(ident: str, name: str | None = None, split: str = "train"):
        return list(datasets.load_dataset(str(_repo(mirror, "dataset", ident)), name, split=split))

    def pair(row):
        return (json.dumps(row["chosen"]), json.dumps(row["rejected"]))

    # several pairs per prompt, and exact duplicate pairs
    for ident in ("Columbia-NLP/DPO-PKU-SafeRLHF", "Columbia-NLP/DPO-Nectar"):
        data = rows(ident)
        prompts = [r["prompt"] for r in data]
        assert max(prompts.count(p) for p in prompts) >= 2, ident
        assert len({pair(r) for r in data}) < len(data), ident
    # system turns, some empty (Orca); roleplay system prompts (truthy)
    orca = rows("Columbia-NLP/DPO-distilabel-intel-orca-dpo-pairs_cleaned")
    assert all(r["chosen"][0]["role"] == "system" for r in orca)
    assert any(r["chosen"][0]["content"] == "" for r in orca)
    assert any(r["system"] for r in rows("jondurbin/truthy-dpo-v0.1"))
    # multi-turn prompts (Capybara)
    capybara = rows("Columbia-NLP/DPO-distilabel-capybara-dpo-7k-binarized")
    assert max(sum(m["role"] == "user" for m in r["chosen"]) for r in capybara) >= 3
    # conversations past the paper's 16,000 characters
    for ident in ("Columbia-NLP/DPO-HelpSteer", "Columbia-NLP/DPO-UltraFeedback_binarized"):
        split = "train_prefs" if "UltraFeedback" in ident else "train"
        assert any(
            sum(len(m["content"]) for m in r["chosen"]) > 16000 for r in rows(ident, split=split)
        )


def test_dataset_config_and_split_names_are_the_hubs(mirror: Path):
    import datasets

    def names(ident: str):
        return datasets.get_dataset_config_names(str(_repo(mirror, "dataset", ident)))

    def splits(ident: str, name: str | None = None):
        return sorted(datasets.get_dataset_split_names(str(_repo(mirror, "dataset", ident)), name))

    assert names("weixinchen/GRATH") == ["llama2_7b", "llama2_13b", "zephyr_7b"]
    assert splits("weixinchen/GRATH", "llama2_7b") == ["pretrained_gen", "selftruth_gen"]
    assert splits("Columbia-NLP/DPO-UltraFeedback_binarized") == ["test_prefs", "train_prefs"]
    assert splits("Columbia-NLP/DPO-HelpSteer") == ["train", "validation"]
    assert splits("Columbia-NLP/DPO-PKU-SafeRLHF") == ["test", "train"]
    assert names("jondurbin/truthy-dpo-v0.1") == ["default"]
    assert (_repo(mirror, "dataset", "jondurbin/truthy-dpo-v0.1") / "truthy-dpo.parquet").is_file()
    assert (_repo(mirror, "dataset", "openbmb/UltraSafety") / "UltraSafety.json").is_file()
    assert sorted(names("OpenSafetyLab/Salad-Data")) == [
        "attack_enhanced_set",
        "base_set",
        "defense_enhanced_set",
        "mcq_set",
    ]
    assert sorted(names("bench-llm/or-bench")) == [
        "or-bench-80k",
        "or-bench-hard-1k",
        "or-bench-toxic",
    ]
    assert (_repo(mirror, "dataset", "bench-llm/or-bench") / "or-bench-hard-1k.csv").is_file()
    assert sorted(names("allenai/ai2_arc")) == ["ARC-Challenge", "ARC-Easy"]
    assert splits("allenai/ai2_arc", "ARC-Easy") == ["test", "train", "validation"]


# ------------------------------------------------------------------ benchmarks


def test_salad_and_or_bench_readers_read_the_replicas(mirror: Path):
    from mixmerge.catalog import benchmark
    from mixmerge.evaluate.judged import load_rows
    from mixmerge.evaluate.salad_bench import load_rows as load_salad

    salad = str(_repo(mirror, "dataset", "OpenSafetyLab/Salad-Data"))
    for subset in ("base_set", "attack_enhanced_set", "defense_enhanced_set"):
        rows, _ = load_salad({"path": salad, "name": subset, "sample_size": 10, "seed": 0})
        assert len(rows) == 10 and all(r["question"] and r["1-category"] for r in rows)
    or_bench = str(_repo(mirror, "dataset", "bench-llm/or-bench"))
    for name in ("or-bench-hard-1k", "or-bench-toxic", "or-bench-80k"):
        rows, _ = load_rows({"path": or_bench, "name": name}, benchmark("or_bench"))
        assert rows and all(r["prompt"] and r["category"] for r in rows)


def test_lm_eval_tasks_read_the_replicas(mirror: Path, monkeypatch):
    import datasets

    from mixmerge.hub import MATH_SUBJECTS, MMLU_SUBJECTS, mirrored_load_dataset

    mmlu = str(_repo(mirror, "dataset", "cais/mmlu"))
    configs = datasets.get_dataset_config_names(mmlu)
    assert set(MMLU_SUBJECTS) <= set(configs) and {"all", "auxiliary_train"} <= set(configs)
    for subject in (MMLU_SUBJECTS[0], MMLU_SUBJECTS[-1]):
        assert sorted(datasets.get_dataset_split_names(mmlu, subject)) == [
            "dev",
            "test",
            "validation",
        ]
    gsm8k = str(_repo(mirror, "dataset", "openai/gsm8k"))
    assert sorted(datasets.get_dataset_config_names(gsm8k)) == ["main", "socratic"]
    assert sorted(datasets.get_dataset_split_names(gsm8k, "main")) == ["test", "train"]
    math = str(_repo(mirror, "dataset", "EleutherAI/hendrycks_math"))
    assert sorted(datasets.get_dataset_config_names(math)) == sorted(MATH_SUBJECTS)

    # lm-eval's own task YAMLs (the index evaluate builds), their hub ids served from the mirror
    from mixmerge.evaluate.lm_eval_tasks import _builtin_task_manager

    monkeypatch.setenv("MIXMERGE_HUB_MIRROR", str(mirror))
    manager = _builtin_task_manager()
    with mirrored_load_dataset():
        for name in ("gsm8k", "arc_easy", "mmlu_abstract_algebra", "minerva_math_algebra"):
            task = next(iter(manager.load_task_or_group([name]).values()))
            docs = list(task.test_docs())
            assert docs and task.doc_to_text(docs[0]), name
            assert task.doc_to_target(docs[0]) is not None, name


def test_url_files_are_the_upstream_bytes(mirror: Path):
    from mixmerge.hub import EVALPLUS_URLS, local_path
    from mixmerge.rehearsal.urls import COPIES, GZIPPED, HALUEVAL_WILD

    for url, (sample, sha) in COPIES.items():
        data = local_path(mirror, "url", url).read_bytes()
        assert data == (SAMPLES / sample).read_bytes()
        if sha:
            assert hashlib.sha256(data).hexdigest() == sha
    assert local_path(mirror, "url", HALUEVAL_WILD).name == "HaluEval_Wild_6types.json"
    for url, sample in GZIPPED.items():
        path = local_path(mirror, "url", url)
        assert path.name in ("HumanEvalPlus.jsonl.gz", "MbppPlus.jsonl.gz")
        assert gzip.decompress(path.read_bytes()) == (SAMPLES / sample).read_bytes()
    assert set(GZIPPED) == set(EVALPLUS_URLS.values())


# ------------------------------------------------------------------ models


def test_models_load_with_their_architecture_and_special_tokens(mirror: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    expected = {
        "meta-llama/Meta-Llama-3-8B-Instruct": (
            "LlamaForCausalLM",
            "<|begin_of_text|>",
            "<|eot_id|>",
        ),
        "mistralai/Mistral-7B-Instruct-v0.2": ("MistralForCausalLM", "<s>", "</s>"),
        "OpenSafetyLab/MD-Judge-v0.1": ("MistralForCausalLM", "<s>", "</s>"),
    }
    for ident, (arch, bos, eos) in expected.items():
        folder = _repo(mirror, "model", ident)
        assert len(list(folder.glob("model-*-of-*.safetensors"))) >= 2, ident
        model = AutoModelForCausalLM.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        assert type(model).__name__ == arch, ident
        assert (tok.bos_token, tok.eos_token) == (bos, eos), ident
        assert model.config.vocab_size == len(tok), ident
        assert tok("Hello")["input_ids"][0] == tok.bos_token_id, (
            ident
        )  # BOS added, as the real ones
    llama = _repo(mirror, "model", "meta-llama/Meta-Llama-3-8B-Instruct")
    gen = json.loads((llama / "generation_config.json").read_text())
    tok = AutoTokenizer.from_pretrained(llama)
    assert gen["eos_token_id"] == [tok.convert_tokens_to_ids("<|end_of_text|>"), tok.eos_token_id]
    assert "chat_template" in json.loads((llama / "tokenizer_config.json").read_text())


def test_chat_templates_are_the_real_formats(mirror: Path):
    from transformers import AutoTokenizer

    from mixmerge.chat import render_chat, supports_system_role

    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    system = [{"role": "system", "content": "Be brief."}]
    llama = AutoTokenizer.from_pretrained(
        _repo(mirror, "model", "meta-llama/Meta-Llama-3-8B-Instruct")
    )
    assert llama.apply_chat_template(system + turns, tokenize=False) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
    )
    assert supports_system_role(llama)

    mistral = AutoTokenizer.from_pretrained(
        _repo(mirror, "model", "mistralai/Mistral-7B-Instruct-v0.2")
    )
    assert mistral.apply_chat_template(turns, tokenize=False) == "<s>[INST] Hi [/INST]Hello!</s>"
    with pytest.raises(Exception, match="roles must alternate"):
        mistral.apply_chat_template(system + turns, tokenize=False)
    assert not supports_system_role(mistral)
    assert render_chat(mistral, system + turns[:1], add_generation_prompt=True).startswith(
        "<s>[INST] Be brief.\n\nHi [/INST]"
    )


def test_armorm_replica_loads_into_mixmerges_implementation(mirror: Path):
    import torch
    from transformers import AutoTokenizer

    from mixmerge.mix.armorm_model import ARMORM_GATING_PATTERN, ArmoRMForScoring, find_last

    folder = _repo(mirror, "model", "RLHFlow/ArmoRM-Llama3-8B-v0.1")
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForRewardModelWithGating"]
    assert config["num_objectives"] == 19 and config["pad_token_id"] == config["vocab_size"] - 1
    model, info = ArmoRMForScoring.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    tok = AutoTokenizer.from_pretrained(folder)
    pattern = tok(ARMORM_GATING_PATTERN, add_special_tokens=False)["input_ids"]
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}],
        tokenize=False,
    )
    ids = tok(text, add_special_tokens=False)["input_ids"]
    out = model(torch.tensor([ids]), gating_positions=[find_last(ids, pattern)])
    assert out.rewards.shape == (1, 19) and torch.isfinite(out.score).all()

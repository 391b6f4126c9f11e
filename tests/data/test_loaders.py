"""Loaders on the fixture copies of the hub schemas: pairs come out right and cleaning is counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixmerge.data import loaders
from mixmerge.data.prepare import prepare_dataset
from mixmerge.data.settings import DatasetSettings, DataSettings
from mixmerge.io import read_json, read_jsonl, write_jsonl
from mixmerge.tiny.datasets import TRAINING_FIXTURES, write_training_fixtures

LOADER_OF = {"ultrasafety": "ultrasafety", "truthy_dpo": "truthy", "grath": "grath"}


def test_lions_row_splits_conversation() -> None:
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2+2?"},
    ]
    row = {
        "chosen": [*history, {"role": "assistant", "content": "4"}],
        "rejected": [*history, {"role": "assistant", "content": "5"}],
    }
    assert list(loaders.lions(row)) == [(history, "4", "5")]
    row["rejected"] = [{"role": "user", "content": "other"}, {"role": "assistant", "content": "5"}]
    assert list(loaders.lions(row)) == []  # answers to different conversations are no pair


def test_ultrasafety_rule_picks_most_helpful_of_each_side() -> None:
    def completion(response: str, harmless: str, helpful: str) -> dict:
        return {
            "response": response,
            "annotations": {
                "harmlessness": [{"Rating": harmless}],
                "helpfulness": [{"Rating": helpful}],
            },
        }

    row = {
        "prompt": "jailbreak: do x",
        "instruction": "do x",
        "completions": [
            completion("safe-low", "1", "2"),
            completion("bad-high", "0", "5"),
            completion("safe-high", "1", "4"),
            completion("bad-low", "0", "1"),
            completion("unrated", "N/A", "5"),
        ],
    }
    assert list(loaders.ultrasafety(row)) == [
        ([{"role": "user", "content": "jailbreak: do x"}], "safe-high", "bad-high")
    ]
    row["completions"] = row["completions"][:1]
    assert list(loaders.ultrasafety(row)) == []


def test_truthy_keeps_system_prompt() -> None:
    row = {"system": "be honest", "prompt": "q", "chosen": "a", "rejected": "b"}
    prompt, chosen, rejected = next(loaders.truthy(row))
    assert prompt == [{"role": "system", "content": "be honest"}, {"role": "user", "content": "q"}]
    assert (chosen, rejected) == ("a", "b")


@pytest.mark.parametrize("name", sorted(TRAINING_FIXTURES))
def test_every_fixture_dataset_loads(tmp_path: Path, name: str) -> None:
    write_training_fixtures(tmp_path, 12, seed=0)
    filename = TRAINING_FIXTURES[name][0]
    cfg = DatasetSettings(loader=LOADER_OF.get(name, "lions"), data_files=str(tmp_path / filename))
    out = tmp_path / "out" / f"{name}.jsonl"
    stats = prepare_dataset(name, cfg, "g", out, DataSettings(max_chars=4000))
    pairs = read_jsonl(tmp_path / "out" / f"{name}.jsonl")
    assert stats["pairs"] == len(pairs) > 0
    assert read_json(tmp_path / "out" / f"{name}.stats.json") == stats
    assert stats["rows"] == 12 and stats["pairs"] + sum(stats["dropped"].values()) >= 12
    for pair in pairs:
        assert set(pair) == {"prompt", "chosen", "rejected", "source", "dimension"}
        assert pair["prompt"][-1]["role"] == "user" and pair["chosen"] != pair["rejected"]


def test_cleaning_counts_each_reason(tmp_path: Path) -> None:
    def row(prompt: str, chosen: str, rejected: str) -> dict:
        return {
            "id": "x",
            "source": "s",
            "system": "",
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
        }

    rows = [
        row("p1", "a", "b"),
        row("p1", "c", "d"),  # another pair for p1: kept (default dedup: pair)
        row("p1", "a", "b"),  # the same pair again: dropped
        row("p2", "same", "same"),
        row("p3", "", "x"),
        row("p4", "y" * 500, "z"),
        row("p5", "ok", "no"),
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    stats = prepare_dataset(
        "t",
        DatasetSettings(loader="truthy", data_files=str(tmp_path / "in.jsonl"), max_samples=1),
        "honesty",
        tmp_path / "out.jsonl",
        DataSettings(max_chars=100),
    )
    assert stats["dropped"] == {
        "chosen_equals_rejected": 1,
        "duplicate_pair": 1,
        "empty_turn": 1,
        "over_length": 1,
        "over_max_samples": 2,
    }
    assert stats["dedup"] == "pair" and stats["modified"] == {}
    assert [p["chosen"] for p in read_jsonl(tmp_path / "out.jsonl")] in (["a"], ["c"], ["ok"])


def test_bad_row_names_dataset_row_and_field(tmp_path: Path) -> None:
    rows = [{"question": "q", "correct": "a", "incorrect": "b"}, {"question": "q2", "correct": "a"}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = DatasetSettings(loader="grath", data_files=str(tmp_path / "in.jsonl"))
    with pytest.raises(
        ValueError,
        match=r"dataset 'grath' \(loader grath\): row 1 does not fit the schema \(field 'incorrect'\)",
    ):
        prepare_dataset("grath", cfg, "honesty", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    skip = DataSettings(on_bad_row="skip")
    stats = prepare_dataset("grath", cfg, "honesty", tmp_path / "out.jsonl", skip)
    assert stats["pairs"] == 1 and stats["dropped"] == {"bad_row": 1}


def test_max_samples_is_a_seeded_sample(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "correct": "a", "incorrect": "b"} for i in range(20)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = DatasetSettings(loader="grath", data_files=str(tmp_path / "in.jsonl"), max_samples=5)
    picks = []
    for seed in (1, 1, 2):
        prepare_dataset("g", cfg, "h", tmp_path / "o.jsonl", DataSettings(seed=seed))
        picks.append([p["prompt"][0]["content"] for p in read_jsonl(tmp_path / "o.jsonl")])
    assert picks[0] == picks[1] != picks[2] and len(picks[0]) == 5


def test_multi_turn_lions_prompt_keeps_history(tmp_path: Path) -> None:
    write_training_fixtures(tmp_path, 4, seed=0)
    cfg = DatasetSettings(loader="lions", data_files=str(tmp_path / "distilabel_capybara.jsonl"))
    prepare_dataset("distilabel_capybara", cfg, "helpfulness", tmp_path / "o.jsonl")
    prompt = read_jsonl(tmp_path / "o.jsonl")[0]["prompt"]
    assert [m["role"] for m in prompt] == ["user", "assistant", "user"]


def test_missing_file_and_empty_result_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset file not found"):
        prepare_dataset(
            "t",
            DatasetSettings(loader="grath", data_files=str(tmp_path / "nope.jsonl")),
            "g",
            tmp_path / "o.jsonl",
        )
    (tmp_path / "same.jsonl").write_text(
        json.dumps({"question": "q", "correct": "a", "incorrect": "a"}) + "\n"
    )
    with pytest.raises(ValueError, match="no usable pairs"):
        prepare_dataset(
            "t",
            DatasetSettings(loader="grath", data_files=str(tmp_path / "same.jsonl")),
            "g",
            tmp_path / "o.jsonl",
        )
    assert not (tmp_path / "o.jsonl").exists()


def test_fixtures_are_deterministic(tmp_path: Path) -> None:
    write_training_fixtures(tmp_path / "a", 5, seed=3)
    write_training_fixtures(tmp_path / "b", 5, seed=3)
    for filename, _ in TRAINING_FIXTURES.values():
        assert (tmp_path / "a" / filename).read_bytes() == (tmp_path / "b" / filename).read_bytes()

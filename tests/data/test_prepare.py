"""Cleaning rules (`data.dedup`, empty system turns) and clear errors for a split or config name."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from mixmerge.config import ConfigError
from mixmerge.data.prepare import load_rows, prepare_dataset
from mixmerge.data.settings import DatasetSettings, DataSettings
from mixmerge.io import read_json, read_jsonl, write_jsonl


def lions_row(prompt: list[dict], chosen: str, rejected: str) -> dict:
    return {
        "chosen": [*prompt, {"role": "assistant", "content": chosen}],
        "rejected": [*prompt, {"role": "assistant", "content": rejected}],
    }


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def system(text: str) -> dict:
    return {"role": "system", "content": text}


@pytest.fixture
def multi_pair_file(tmp_path: Path) -> Path:
    """PKU-SafeRLHF / Nectar shape: several distinct pairs per prompt, plus one exact repeat."""
    rows = [
        lions_row([user("p1")], "a", "b"),
        lions_row([user("p1")], "a", "c"),
        lions_row([user("p1")], "d", "b"),
        lions_row([user("p1")], "a", "b"),  # exact duplicate of the first pair
        lions_row([user("p2")], "x", "y"),
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    return tmp_path / "in.jsonl"


P1_AB, P1_AC, P1_DB, P2_XY = ("p1", "a", "b"), ("p1", "a", "c"), ("p1", "d", "b"), ("p2", "x", "y")


@pytest.mark.parametrize(
    ("dedup", "pairs", "dropped"),
    [
        ("pair", [P1_AB, P1_AC, P1_DB, P2_XY], {"duplicate_pair": 1}),
        ("prompt", [P1_AB, P2_XY], {"duplicate_prompt": 3}),
        ("none", [P1_AB, P1_AC, P1_DB, P1_AB, P2_XY], {}),
    ],
)
def test_dedup_modes(
    tmp_path: Path, multi_pair_file: Path, dedup: str, pairs: list, dropped: dict
) -> None:
    cfg = DatasetSettings(loader="lions", data_files=str(multi_pair_file))
    settings = DataSettings(dedup=dedup)
    stats = prepare_dataset("pku", cfg, "helpful_harmless", tmp_path / "o.jsonl", settings)
    written = read_jsonl(tmp_path / "o.jsonl")
    assert [(p["prompt"][-1]["content"], p["chosen"], p["rejected"]) for p in written] == pairs
    assert stats["dedup"] == dedup and stats["dropped"] == dropped
    assert stats["pairs"] == len(pairs) and stats["rows"] == 5
    assert read_json(tmp_path / "o.stats.json") == stats


def test_unknown_dedup_mode_is_clear() -> None:
    with pytest.raises(
        ConfigError, match=r"^config error: 'data.dedup': unknown mode 'exact' \(allowed: pair, "
    ):
        DataSettings(dedup="exact")


def test_empty_system_turn_is_removed_and_pair_kept(tmp_path: Path) -> None:
    rows = [
        lions_row([system(""), user("q1")], "a", "b"),  # the Orca set's empty system prompt
        lions_row([system("  \n"), user("q2")], "a", "b"),
        lions_row([system("be brief"), user("q3")], "a", "b"),
        lions_row([system(""), user(" ")], "a", "b"),  # an empty user turn still drops the pair
        lions_row([system(" ")], "a", "b"),  # nothing left to answer
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = DatasetSettings(loader="lions", data_files=str(tmp_path / "in.jsonl"))
    stats = prepare_dataset("distilabel_orca", cfg, "helpfulness", tmp_path / "o.jsonl")
    prompts = [p["prompt"] for p in read_jsonl(tmp_path / "o.jsonl")]
    assert prompts == [[user("q1")], [user("q2")], [system("be brief"), user("q3")]]
    assert stats["modified"] == {"empty_system_turn_removed": 2}
    assert stats["dropped"] == {"empty_prompt": 1, "empty_turn": 1}


def test_truthy_whitespace_system_is_removed(tmp_path: Path) -> None:
    rows = [{"system": " ", "prompt": "q", "chosen": "a", "rejected": "b"}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = DatasetSettings(loader="truthy", data_files=str(tmp_path / "in.jsonl"))
    stats = prepare_dataset("truthy_dpo", cfg, "honesty", tmp_path / "o.jsonl")
    assert read_jsonl(tmp_path / "o.jsonl")[0]["prompt"] == [user("q")]
    assert stats["modified"] == {"empty_system_turn_removed": 1} and stats["dropped"] == {}


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


GRATH_ROW = {"question": "q", "correct": "a", "incorrect": "b"}


def write_parquet_dataset(root: Path, splits: tuple[str, ...]) -> Path:
    """A dataset directory in the hub's parquet layout: data/<split>-00000-of-00001.parquet."""
    import datasets

    (root / "data").mkdir(parents=True)
    for split in splits:
        rows = datasets.Dataset.from_list([GRATH_ROW])
        rows.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


@pytest.mark.usefixtures("isolated_cache")
def test_wrong_split_names_split_and_available_splits(tmp_path: Path) -> None:
    root = write_parquet_dataset(tmp_path / "GRATH", ("pretrained_gen", "selftruth_gen"))
    cfg = DatasetSettings(loader="grath", path=str(root), split="train")
    where = re.escape(str(root))
    with pytest.raises(
        ValueError,
        match=rf"^dataset 'grath' \({where}\): no split 'train'; available splits: pretrained_gen, "
        r"selftruth_gen \(set datasets\.grath\.split\)$",
    ):
        prepare_dataset("grath", cfg, "honesty", tmp_path / "o.jsonl")
    stats = prepare_dataset(
        "grath", replace(cfg, split="pretrained_gen"), "honesty", tmp_path / "o.jsonl"
    )
    assert stats["rows"] == stats["pairs"] == 1


@pytest.mark.usefixtures("isolated_cache")
def test_wrong_split_of_local_data_files_is_clear(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "pre.jsonl", [GRATH_ROW])
    cfg = DatasetSettings(loader="grath", data_files={"pretrained_gen": str(tmp_path / "pre.jsonl")})
    with pytest.raises(
        ValueError,
        match=r"^dataset 'grath' \(local data_files\): no split 'train'; available splits: "
        r"pretrained_gen \(set datasets\.grath\.split\)$",
    ):
        load_rows(cfg, "grath")
    assert len(load_rows(replace(cfg, split="pretrained_gen"), "grath")) == 1


@pytest.mark.usefixtures("isolated_cache")
def test_wrong_or_missing_config_name_is_clear(tmp_path: Path) -> None:
    root = tmp_path / "GRATH"
    for config in ("llama2_7b", "zephyr_7b"):
        write_jsonl(root / config / "iter0.json", [GRATH_ROW])
    card = "".join(
        f"- config_name: {c}\n  data_files:\n  - split: pretrained_gen\n    path: {c}/iter0.json\n"
        for c in ("llama2_7b", "zephyr_7b")
    )
    (root / "README.md").write_text(f"---\nconfigs:\n{card}---\n")  # the hub card's `configs:`
    cfg = DatasetSettings(loader="grath", path=str(root), name="llama2_70b", split="pretrained_gen")
    where = re.escape(str(root))
    with pytest.raises(
        ValueError,
        match=rf"^dataset 'grath' \({where}, config llama2_70b\): no config 'llama2_70b'; "
        r"available configs: "
        r"llama2_7b, zephyr_7b \(set datasets\.grath\.name\)$",
    ):
        load_rows(cfg, "grath")
    with pytest.raises(ValueError, match=r"a config name is needed; available configs: llama2_7b"):
        load_rows(replace(cfg, name=None), "grath")
    with pytest.raises(
        ValueError,
        match=r", config llama2_7b\): no split 'train'; available splits: pretrained_gen",
    ):
        load_rows(replace(cfg, name="llama2_7b", split="train"), "grath")
    assert len(load_rows(replace(cfg, name="llama2_7b"), "grath")) == 1

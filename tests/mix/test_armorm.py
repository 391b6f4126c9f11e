"""ArmoRM mixture: orientation by score, margin selection, on-policy pairs, cached scoring."""

from __future__ import annotations

from pathlib import Path

import pytest
from mix_helpers import GROUPS

from mixmerge.io import read_jsonl
from mixmerge.mix import MixContext, MixSettings, build_mix
from mixmerge.mix.armorm import on_policy, relabel
from mixmerge.mix.reward import RewardScorer
from mixmerge.mix.settings import OnPolicySettings, RewardModelSettings


class TableScorer:
    """Test double: the score of a response is looked up in a table."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def score(self, items):
        return [{"score": self.table[response], "rewards": []} for _, response in items]


def _pair(i: int, chosen: str, rejected: str) -> dict:
    return {
        "prompt": [{"role": "user", "content": f"q{i}"}],
        "chosen": chosen,
        "rejected": rejected,
        "source": "helpsteer",
        "dimension": "helpfulness",
    }


POOL = [
    _pair(0, "a", "b"),
    _pair(1, "c", "d"),
    _pair(2, "e", "f"),
    _pair(3, "g", "h"),
    _pair(4, "i", "j"),
]
SCORES = {
    "a": 1.0,
    "b": 0.0,
    "c": 0.2,
    "d": 0.9,
    "e": 0.5,
    "f": 0.5,
    "g": 2.0,
    "h": -1.0,
    "i": 0.1,
    "j": 0.0,
}


def test_relabel_orients_and_drops_ties() -> None:
    pairs, stats = relabel(POOL, TableScorer(SCORES))
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        ("a", "b"),
        ("d", "c"),
        ("g", "h"),
        ("i", "j"),
    ]
    assert stats["flipped"] == 1 and stats["dropped_ties"] == 1 and stats["flipped_in_mix"] == 1
    assert stats["margins"]["max"] == pytest.approx(3.0)


def test_relabel_keeps_largest_margins_in_pool_order() -> None:
    pairs, stats = relabel(POOL, TableScorer(SCORES), budget=2)
    assert [p["prompt"][0]["content"] for p in pairs] == ["q0", "q3"]  # margins 1.0 and 3.0
    assert stats["margin_threshold"] == pytest.approx(1.0)
    pairs, _ = relabel(POOL, TableScorer(SCORES), budget=3, min_margin=0.5)
    assert [p["prompt"][0]["content"] for p in pairs] == ["q0", "q1", "q3"]


def test_on_policy_best_vs_worst(tmp_path: Path) -> None:
    samples = {"q0": ["x", "x ", "x"], "q1": ["lo", "hi", "mid"], "q2": ["t1", "t2", "t3"]}
    table = {
        "x": 0.0,
        "x ": 0.0,
        "lo": -1.0,
        "hi": 2.0,
        "mid": 0.5,
        "t1": 1.0,
        "t2": 1.0,
        "t3": 1.0,
    }
    calls = []

    def generate(policy, convs, gen_cfg, device, draws):
        calls.append(len(convs))
        assert draws == [0, 1, 2] * (len(convs) // 3)
        assert gen_cfg["temperature"] == 0.8 and gen_cfg["top_p"] == 0.95
        out, seen = [], {}
        for conv in convs:  # the k copies of one prompt get that prompt's k samples in turn
            q = conv[0]["content"]
            out.append(samples[q][seen.get(q, 0)])
            seen[q] = seen.get(q, 0) + 1
        return out

    pool = [_pair(i, "c", "r") for i in range(3)] + [_pair(1, "c2", "r2")]  # q1 twice: one prompt
    kwargs = dict(
        policy="policy-id",
        gen_cfg={"backend": "hf"},
        device="cpu",
        cache_dir=tmp_path,
        seed=0,
        options=OnPolicySettings(samples_per_prompt=3),
        generate=generate,
    )
    pairs, stats = on_policy(pool, TableScorer(table), **kwargs)
    assert [(p["prompt"][0]["content"], p["chosen"], p["rejected"]) for p in pairs] == [
        ("q1", "hi", "lo")
    ]
    assert stats["prompts"] == 3 and stats["dropped_identical"] == 1 and stats["dropped_tied"] == 1
    assert calls == [9]
    # the samples are cached: a rerun generates nothing
    again, stats2 = on_policy(pool, TableScorer(table), **kwargs)
    assert again == pairs and calls == [9] and stats2["generated_prompts"] == 0


def test_trust_remote_code_needs_pinned_revision(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pin"):
        RewardScorer(
            RewardModelSettings("RLHFlow/ArmoRM-Llama3-8B-v0.1", trust_remote_code=True), tmp_path
        )


def test_tiny_reward_model_relabel_end_to_end_and_cached(
    pair_files: dict[str, Path], tiny_reward_model_dir: Path, tmp_path: Path
) -> None:
    cfg = MixSettings.from_block(
        {
            "armorm": {
                "mode": "relabel",
                "budget": 20,
                "pool_size": 60,
                "reward_model": {"path": str(tiny_reward_model_dir), "batch_size": 16},
            }
        }
    )
    work = MixContext(cache_dir=tmp_path / "cache", device="cpu")
    first = build_mix("armorm", cfg, pair_files, GROUPS, tmp_path / "a.jsonl", context=work)
    second = build_mix("armorm", cfg, pair_files, GROUPS, tmp_path / "b.jsonl", context=work)
    s1, s2 = first["stats"]["scoring"], second["stats"]["scoring"]
    assert first["pool"] == {"pairs": 177, "candidates": 60, "datasets": list(pair_files)}
    n_responses = 2 * 60
    assert s1["scored"] == n_responses and s1["model_calls"] > 0
    assert s2["model_calls"] <= 0.1 * s1["model_calls"] and s2["cache_hits"] == n_responses
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    pairs = read_jsonl(tmp_path / "a.jsonl")
    assert len(pairs) == 20 == first["composition"]["pairs"]
    # every kept pair is oriented by the reward model, and margins are the largest ones
    scorer = RewardScorer(cfg.armorm.reward_model, work.cache_dir)
    margins = []
    for p in pairs:
        c, r = scorer.score([(p["prompt"], p["chosen"]), (p["prompt"], p["rejected"])])
        assert c["score"] > r["score"] and len(c["rewards"]) == 19
        margins.append(c["score"] - r["score"])
    assert scorer.model_calls == 0
    assert min(margins) == pytest.approx(first["stats"]["margin_threshold"])


def test_tiny_on_policy_end_to_end(
    pair_files: dict[str, Path], tiny_model_dir: Path, tiny_reward_model_dir: Path, tmp_path: Path
) -> None:
    cfg = MixSettings.from_block(
        {
            "armorm": {
                "mode": "on_policy",
                "budget": 4,
                "on_policy": {"samples_per_prompt": 3, "max_new_tokens": 6},
                "reward_model": {"path": str(tiny_reward_model_dir)},
            }
        }
    )
    work = MixContext(
        cache_dir=tmp_path / "cache",
        device="cpu",
        policy=str(tiny_model_dir),
        generation={"backend": "hf", "batch_size": 12, "max_new_tokens": 24},
    )
    first = build_mix("armorm", cfg, pair_files, GROUPS, tmp_path / "a.jsonl", context=work)
    assert first["stats"]["prompts"] == 4 and first["stats"]["generated_prompts"] == 4
    assert first["stats"]["sampling"] == {
        "temperature": 0.8,
        "top_p": 0.95,
        "max_new_tokens": 6,
        "seed": 0,
    }
    pairs = read_jsonl(tmp_path / "a.jsonl")
    assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
    second = build_mix("armorm", cfg, pair_files, GROUPS, tmp_path / "b.jsonl", context=work)
    assert (
        second["stats"]["generated_prompts"] == 0 and second["stats"]["scoring"]["model_calls"] == 0
    )
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()

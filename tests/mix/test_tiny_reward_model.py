"""The tiny reward model: ArmoRM-shaped (19 objectives), the tiny tokenizer, batched scoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixmerge.mix.reward import HFRewardModel
from mixmerge.mix.settings import RewardModelSettings
from mixmerge.tiny.reward_model import ARMORM_OBJECTIVES, build_tiny_reward_model


def test_tiny_reward_model_shape(
    tiny_reward_model_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_reward_model_dir)
    assert config.num_labels == 19 and config.pad_token_id is not None
    assert config.id2label[0] == "helpsteer-helpfulness"
    assert (
        config.id2label[8] == "ultrafeedback-honesty"
        and config.id2label[10] == "beavertails-is_safe"
    )
    assert len(ARMORM_OBJECTIVES) == 19
    source = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_reward_model_dir)
    assert tok.get_vocab() == source.get_vocab() and tok.chat_template == source.chat_template
    # same seed -> same weights
    build_tiny_reward_model(tmp_path / "again", tiny_model_dir, seed=0)
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (
        tiny_reward_model_dir / "model.safetensors"
    ).read_bytes()


def test_scores_do_not_depend_on_batching(tiny_reward_model_dir: Path) -> None:
    items = [([{"role": "user", "content": "How are you?"}], "fine " * n) for n in range(1, 6)]
    items.append(
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "Hello")
    )
    batched = HFRewardModel(RewardModelSettings(str(tiny_reward_model_dir), batch_size=8), "cpu")
    together = batched.score_batch(items)
    alone = [batched.score_batch([it])[0] for it in items]
    for (s1, r1), (s2, r2) in zip(together, alone, strict=True):
        assert abs(s1 - s2) < 1e-5 and len(r1) == len(r2) == 19
        assert abs(s1 - sum(r1) / 19) < 1e-5  # no `score` output: the mean of the objectives
    first = HFRewardModel(RewardModelSettings(str(tiny_reward_model_dir), objective=10), "cpu")
    s, r = first.score_batch(items[:1])[0]
    assert s == r[10]


def test_native_armorm_matches_its_formula(tiny_model_dir: Path, tmp_path: Path) -> None:
    """An ArmoRM-shaped checkpoint loads into mixmerge's class; score = sum(gates * rewards)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig

    from mixmerge.mix.armorm_model import ArmoRMForScoring, find_last

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, pad_token_id=None,
        num_objectives=19, gating_temperature=10, gating_hidden_dim=16, gating_n_hidden=3,
    )  # fmt: skip
    torch.manual_seed(0)
    model = ArmoRMForScoring(config)
    with torch.no_grad():
        model.gating.logit_scale.fill_(2.0)
        model.reward_transform_matrix.copy_(torch.rand(19, 19))
    model.save_pretrained(tmp_path / "armo")
    tok.save_pretrained(tmp_path / "armo")

    pattern = "<|eot|>\n<|assistant|>\n"  # the tiny template's assistant header
    cfg = RewardModelSettings(str(tmp_path / "armo"), architecture="armorm", gating_pattern=pattern)
    rm = HFRewardModel(cfg, "cpu")
    assert rm.batch_size == 8  # no pad id in the config: ours still batches
    items = [
        ([{"role": "user", "content": "Hi"}], "Hello there"),
        ([{"role": "user", "content": "A longer question here?"}], "Yes"),
    ]
    together = rm.score_batch(items)
    for (messages, reply), (score, rewards) in zip(items, together, strict=True):
        ids = rm._render(messages, reply)
        x = torch.tensor([ids])
        with torch.no_grad():
            h = model.model(input_ids=x).last_hidden_state[0]
            r = model.regression_layer(h[-1:])
            g = model.gating(h[find_last(ids, rm.gating_pattern)][None])
            expected = float((g * (r @ model.reward_transform_matrix)).sum())
        assert abs(score - expected) < 1e-4 and len(rewards) == 19
    with pytest.raises(ValueError, match="not an ArmoRM checkpoint"):
        HFRewardModel(RewardModelSettings(str(tiny_model_dir), architecture="armorm"), "cpu")

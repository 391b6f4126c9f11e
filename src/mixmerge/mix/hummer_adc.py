r"""Alignment-dimension conflict (ADC) measured the Hummer way: with reward models.

Hummer (Jiang et al., arXiv 2405.11647) calls a preference dataset conflicting when fine-tuning
a reward model on the data of one alignment dimension makes it worse on the others, and measures
the conflict as the second-order moment of those negative performance deviations. For a mix M
whose pairs carry a preferred dimension k in K (the Hummer labels):

1. Split each dimension's pairs into train and test (`test_fraction`, seeded; at most
   `max_pairs_per_dimension` train pairs each, a cap for cost).
2. RM_0: a reward model trained on the train pairs of every dimension (Bradley-Terry, trl's
   RewardTrainer) from `reward_model.path` (a fresh one-output head on that checkpoint).
3. RM_k: RM_0 fine-tuned further on dimension k's train pairs alone.
4. acc(RM, T_j): the share of dimension j's test pairs whose chosen response RM scores higher.
   delta_kj = acc(RM_k, T_j) - acc(RM_0, T_j) for j != k.
5. ADC = sqrt( mean over (k, j != k) of min(0, delta_kj)^2 ).

The paper states the second-order moment; mixmerge reports its square root, so that ADC is on
the accuracy scale (an ADC of 0.05 is an RMS drop of 5 points of accuracy), as the label-based
estimate in mixmerge.mix.hummer is on the scale of a share of pairs. 1 + |K| reward models are
trained per measurement; at 8B that is GPU-hours, which is why `max_pairs_per_dimension` exists.

The settings (config `mixtures.hummer.reward_models`, their defaults and meaning) are
`mixmerge.mix.settings.AdcRewardModelSettings`; a causal LM at `path` gets a new one-output head.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixmerge.mix.common import Pair, seeded_rng
from mixmerge.mix.settings import AdcRewardModelSettings

log = logging.getLogger(__name__)


def adc_from_accuracies(
    reference: Mapping[str, float], tuned: Mapping[str, Mapping[str, float]]
) -> tuple[float, dict[str, dict[str, float]]]:
    """(ADC, delta_kj) from acc(RM_0, T_j) (`reference`) and acc(RM_k, T_j) (`tuned[k][j]`)."""
    deltas = {
        k: {j: float(row[j]) - float(reference[j]) for j in reference if j != k and j in row}
        for k, row in tuned.items()
    }
    drops = [min(0.0, d) for row in deltas.values() for d in row.values()]
    adc = math.sqrt(sum(d * d for d in drops) / len(drops)) if drops else 0.0
    return adc, deltas


def split_by_dimension(
    pairs: Sequence[Pair],
    dimensions: Sequence[str],
    test_fraction: float,
    seed: int,
    max_train: int | None = None,
) -> tuple[dict[str, list[Pair]], dict[str, list[Pair]]]:
    """(train, test) pairs per dimension: a seeded shuffle, at least one pair each side."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"mixtures.hummer.reward_models.test_fraction must be in (0, 1), got {test_fraction}")
    by_dim: dict[str, list[Pair]] = {}
    for pair, dim in zip(pairs, dimensions, strict=True):
        by_dim.setdefault(dim, []).append(pair)
    train: dict[str, list[Pair]] = {}
    test: dict[str, list[Pair]] = {}
    for dim, items in sorted(by_dim.items()):
        if len(items) < 2:
            log.warning("hummer ADC: dimension %s has %d pair(s), left out", dim, len(items))
            continue
        items = list(items)
        seeded_rng(seed, "hummer-adc", dim).shuffle(items)
        n_test = min(max(1, round(test_fraction * len(items))), len(items) - 1)
        test[dim] = items[:n_test]
        train[dim] = items[n_test:][: max_train] if max_train else items[n_test:]
    return train, test


def _rows(pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": list(p["prompt"]),
            "chosen": [{"role": "assistant", "content": p["chosen"]}],
            "rejected": [{"role": "assistant", "content": p["rejected"]}],
        }
        for p in pairs
    ]


def train_reward_model(
    init: str | Path, pairs: Sequence[Pair], models: AdcRewardModelSettings, out: Path, seed: int
) -> Path:
    """Bradley-Terry training with trl's RewardTrainer; the model is saved to `out`."""
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from mixmerge.chat import prepare_conversation
    from mixmerge.hub import model_source

    # the configured checkpoint at its revision; a model trained here is a local directory
    source, revision = model_source(init, models.revision if str(init) == models.path else None)
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        source,
        revision=revision,
        num_labels=1,
        ignore_mismatched_sizes=True,  # a causal LM or a multi-objective head: a new scalar head
        dtype=torch.float32,  # master weights in fp32 (bf16 only as autocast, below)
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    rows = _rows(pairs)
    for row in rows:  # templates without a system role get it folded, as everywhere else
        row["prompt"] = prepare_conversation(row["prompt"], tokenizer)
    args = RewardConfig(
        output_dir=str(out.with_name(out.name + ".trainer")),
        num_train_epochs=float(models.epochs),
        learning_rate=float(models.learning_rate),
        per_device_train_batch_size=models.batch_size,
        max_length=models.max_length,
        seed=seed,
        bf16=models.dtype == "bfloat16",
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
    )
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.train()
    if out.exists():
        shutil.rmtree(out)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    shutil.rmtree(args.output_dir, ignore_errors=True)
    return out


def accuracy(
    model_dir: Path, pairs: Sequence[Pair], models: AdcRewardModelSettings, cache_dir: Path
) -> float:
    """Share of pairs whose chosen response the reward model scores above the rejected one."""
    from mixmerge.mix.reward import RewardScorer

    scorer = RewardScorer(models.scorer(model_dir), cache_dir, models.device)
    try:
        items = [(p["prompt"], p["chosen"]) for p in pairs] + [
            (p["prompt"], p["rejected"]) for p in pairs
        ]
        scores = [s["score"] for s in scorer.score(items)]
    finally:
        scorer.close()
    n = len(pairs)
    return sum(scores[i] > scores[n + i] for i in range(n)) / n


def reward_model_adc(
    pairs: Sequence[Pair],
    dimensions: Sequence[str],
    models: AdcRewardModelSettings,
    *,
    seed: int,
    work_dir: str | Path,
) -> dict[str, Any]:
    """ADC of a labelled mix, measured with 1 + |K| reward models (see the module docstring)."""
    if not models.path:
        raise ValueError("mixtures.hummer.reward_models.path is required for adc: reward_models")
    work = Path(work_dir)
    train, test = split_by_dimension(
        pairs, dimensions, models.test_fraction, seed, models.max_pairs_per_dimension
    )
    if len(train) < 2:  # nothing to deviate from: said in the stats, not a crash of the mix
        reason = f"pairs of 2 dimensions or more are needed, the mix has {sorted(train) or 'none'}"
        log.warning("hummer ADC not measured: %s", reason)
        return {"adc": None, "not_measured": reason, "reward_model": models.path}
    everything = [p for dim in sorted(train) for p in train[dim]]
    reference_dir = train_reward_model(models.path, everything, models, work / "rm_all", seed)
    reference = {j: accuracy(reference_dir, test[j], models, work / "cache") for j in test}
    tuned: dict[str, dict[str, float]] = {}
    for k in sorted(train):
        tuned_dir = train_reward_model(reference_dir, train[k], models, work / f"rm_{k}", seed)
        tuned[k] = {j: accuracy(tuned_dir, test[j], models, work / "cache") for j in test}
        shutil.rmtree(tuned_dir, ignore_errors=True)
    shutil.rmtree(reference_dir, ignore_errors=True)
    adc, deltas = adc_from_accuracies(reference, tuned)
    return {
        "adc": adc,
        "deviations": deltas,
        "accuracy_reference": reference,
        "accuracy_tuned": tuned,
        "train_pairs": {k: len(v) for k, v in train.items()},
        "test_pairs": {k: len(v) for k, v in test.items()},
        "reward_model": models.path,
    }

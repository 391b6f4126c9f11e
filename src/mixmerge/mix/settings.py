"""The `mixtures:` block as typed settings: every mixture default lives in a field here.

Built once from the validated config (`MixSettings.from_config`); the schema has already
rejected unknown keys and wrong types. The judge (`mixtures.hummer.judge`) and the generation
settings stay the judge's and the evaluation's own mappings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixmerge.config import ConfigError
from mixmerge.naming import SweepSettings

STRATEGIES = ("heuristic", "armorm", "hummer")
SIZES = ("paper", "constant")  # mixtures.heuristic.size, see mixmerge.mix.heuristic
MODES = ("relabel", "on_policy")  # mixtures.armorm.mode, see mixmerge.mix.armorm
ADC_ESTIMATORS = ("reward_models", "labels")  # mixtures.hummer.adc, see mixmerge.mix.hummer


def _one_of(where: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"config error: '{where}': {value!r} (allowed: {', '.join(allowed)})")


@dataclass(frozen=True)
class HeuristicSettings:
    """`mixtures.heuristic`: (honesty + harmlessness) to helpfulness data at fixed ratios.

    By default the two mixed groups count on the helpful side: the ratio is about adding
    honesty/harmlessness data to general helpfulness data. A group on neither side is left out.
    """

    ratios: tuple[float, ...] = (0.2, 0.1, 0.05)  # the paper's 1/5, 1/10, 1/20
    size: str = "paper"  # see SIZES
    helpful_groups: tuple[str, ...] = ("helpfulness", "helpful_honest", "helpful_harmless")
    other_groups: tuple[str, ...] = ("honesty", "harmlessness")
    budget: int | None = None  # a cap on the total pairs of one mix

    def __post_init__(self) -> None:
        _one_of("mixtures.heuristic.size", self.size, SIZES)

    @classmethod
    def from_block(cls, block: Mapping[str, Any] | None) -> HeuristicSettings:
        values = dict(block or {})
        if "ratios" in values:
            values["ratios"] = tuple(float(r) for r in values["ratios"])
        for side in ("helpful_groups", "other_groups"):
            if side in values:
                values[side] = tuple(values[side])
        return cls(**values)


@dataclass(frozen=True)
class RewardModelSettings:
    """A reward model that scores (conversation, response) items (`mixtures.armorm.reward_model`).

    See mixmerge.mix.reward for how each kind of model is loaded and read."""

    path: str  # hub id or local directory
    revision: str | None = None  # pin a commit hash for remote code
    trust_remote_code: bool = False  # run the model's own hub code
    architecture: str | None = None  # None: AutoModelForSequenceClassification; "armorm"
    gating_pattern: str | None = None  # armorm: None = ArmoRM's Llama-3 assistant header
    objective: int | str | None = None  # None: out.score if any, else the mean; "mean"; an index
    dtype: str = "auto"
    batch_size: int = 8  # sequences per forward pass
    max_length: int = 4096  # tokens kept per sequence (from the end)
    device: str | None = None  # None: cuda if available, else cpu

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> RewardModelSettings:
        return cls(**block)


@dataclass(frozen=True)
class OnPolicySettings:
    """`mixtures.armorm.on_policy`: the SimPO recipe's sampling."""

    samples_per_prompt: int = 5
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int | None = 4096  # SimPO's max_tokens; None: evaluate.generation's
    chunk_prompts: int = 64  # prompts generated per call; each chunk is cached when done

    @classmethod
    def from_block(cls, block: Mapping[str, Any] | None) -> OnPolicySettings:
        return cls(**(block or {}))


@dataclass(frozen=True)
class ArmormSettings:
    """`mixtures.armorm`: pairs relabelled or built on-policy with a reward model."""

    reward_model: RewardModelSettings
    mode: str = "relabel"  # see MODES
    budget: int | None = None  # relabel: pairs kept; on_policy: prompts sampled (None: all)
    pool_size: int | None = None  # a seeded sample of the pool is scored (None: all)
    min_margin: float = 0.0  # relabel: pairs whose score margin is at most this are dropped
    on_policy: OnPolicySettings = field(default_factory=OnPolicySettings)

    def __post_init__(self) -> None:
        _one_of("mixtures.armorm.mode", self.mode, MODES)

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> ArmormSettings:
        values = dict(block)
        if "reward_model" not in values:
            raise ConfigError("config error: 'mixtures.armorm.reward_model' is required")
        values["reward_model"] = RewardModelSettings.from_block(values["reward_model"])
        values["on_policy"] = OnPolicySettings.from_block(values.get("on_policy"))
        return cls(**values)


@dataclass(frozen=True)
class AdcRewardModelSettings:
    """`mixtures.hummer.reward_models`: the reward models that measure a mix's ADC
    (mixmerge.mix.hummer_adc)."""

    path: str  # the checkpoint every reward model starts from
    revision: str | None = None
    max_pairs_per_dimension: int | None = None  # train pairs per dimension (None: all)
    test_fraction: float = 0.2  # share of each dimension's pairs held out
    learning_rate: float = 1e-5
    epochs: float = 1.0
    batch_size: int = 8
    max_length: int = 1024
    # bfloat16: bf16 autocast over fp32 master weights, as the DPO stage (pure bf16 loses updates)
    dtype: str = "float32"
    device: str | None = None

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> AdcRewardModelSettings:
        return cls(**block)

    def scorer(self, path: str | Path) -> RewardModelSettings:
        """How a trained reward model of the measurement is read back."""
        return RewardModelSettings(
            path=str(path),
            dtype=self.dtype,
            batch_size=self.batch_size,
            max_length=self.max_length,
            device=self.device,
        )


@dataclass(frozen=True)
class HummerSettings:
    """`mixtures.hummer`: LLM-judged alignment dimensions, the mix's ADC kept under a threshold."""

    # the label estimate of ADC the selection keeps under: 0.05 lets at most about 12% of one
    # dimension's pairs conflict with one other dimension (sqrt(0.12^2 / 6) = 0.049), where 0.2
    # would let about half through
    threshold: float = 0.05
    budget: int | None = None  # a cap on the pairs kept
    pool_size: int | None = None  # a seeded sample of the pool is labelled (None: all)
    chunk: int = 64  # pairs per judge call; each chunk's labels are cached when done
    judge: Mapping[str, Any] | None = None  # None: evaluate.judge
    adc: str = "reward_models"  # how the mix's ADC is reported, see ADC_ESTIMATORS
    reward_models: AdcRewardModelSettings | None = None  # needed by adc: reward_models

    def __post_init__(self) -> None:
        _one_of("mixtures.hummer.adc", self.adc, ADC_ESTIMATORS)

    @classmethod
    def from_block(cls, block: Mapping[str, Any] | None) -> HummerSettings:
        values = dict(block or {})
        if values.get("reward_models") is not None:
            values["reward_models"] = AdcRewardModelSettings.from_block(values["reward_models"])
        return cls(**values)


@dataclass(frozen=True)
class MixSettings:
    """Config `mixtures`: which mixtures are built, and each strategy's settings."""

    strategies: tuple[str, ...] = ()
    cache_dir: str | None = None  # None: the `--cache-dir` of the job, else <out dir>/cache
    # the beta x lr grid each mixture is trained over; None = "same" (train.sweep)
    sweep: SweepSettings | None = None
    heuristic: HeuristicSettings = field(default_factory=HeuristicSettings)
    armorm: ArmormSettings | None = None  # None: not configured (it needs a reward model)
    hummer: HummerSettings = field(default_factory=HummerSettings)
    seed: int = 0  # the config's top-level `seed`

    @classmethod
    def from_block(cls, block: Mapping[str, Any] | None) -> MixSettings:
        """Settings from a `mixtures:` mapping (keys = field names)."""
        values = dict(block or {})
        if "strategies" in values:
            values["strategies"] = tuple(values["strategies"])
        values["sweep"] = cls._sweep(values.get("sweep"))  # absent: same
        values["heuristic"] = HeuristicSettings.from_block(values.get("heuristic"))
        if values.get("armorm") is not None:
            values["armorm"] = ArmormSettings.from_block(values["armorm"])
        values["hummer"] = HummerSettings.from_block(values.get("hummer"))
        return cls(**values)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> MixSettings:
        """Settings from the whole validated config: `mixtures` and top-level `seed`."""
        run = {"seed": cfg["seed"]} if "seed" in cfg else {}
        return cls.from_block({**(cfg.get("mixtures") or {}), **run})

    @staticmethod
    def _sweep(sweep: str | Mapping[str, Any] | None) -> SweepSettings | None:
        if sweep in (None, "same"):
            return None
        if sweep == "none":  # no grid: train.beta and train.learning_rate only
            return SweepSettings()
        if not isinstance(sweep, Mapping):
            raise ConfigError(
                f"config error: 'mixtures.sweep': same, none or a {{beta, learning_rate}} grid, "
                f"got {sweep!r}"
            )
        return SweepSettings.from_block(sweep)


@dataclass(frozen=True)
class MixContext:
    """What one mix job brings besides the config: caches, device, and the shared models.

    cache_dir   scoring / labelling / sample caches (else mixtures.cache_dir, else <out dir>/cache)
    device      reward model, policy and local judge device (None: cuda if available, else cpu)
    policy      the policy model directory of armorm on_policy (the base model)
    judge       the judge when mixtures.hummer.judge is null (config evaluate.judge)
    generation  the generation settings of on_policy (config evaluate.generation)
    """

    cache_dir: str | Path | None = None
    device: str | None = None
    policy: str | Path | None = None
    judge: Mapping[str, Any] | None = None
    generation: Mapping[str, Any] | None = None

"""Hummer mixture: ADC on a hand-worked example, selection under the threshold, cached labels."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mix_helpers import GROUPS, write_pair_files

from mixmerge.judge import Verdict
from mixmerge.mix import MixContext, MixSettings, build_mix
from mixmerge.mix.hummer import (
    LABELS,
    NOISE,
    adc,
    deviations,
    hummer_mix,
    label_name,
    load_hummer_prompt,
    parse_label,
    select_low_conflict,
)
from mixmerge.mix.settings import HummerSettings

HELP, HON, HARM = "helpfulness", "honesty", "harmlessness"


def test_labels_round_trip() -> None:
    assert len(LABELS) == 10 and len(set(LABELS)) == 10 and LABELS[-1] == NOISE
    for name in LABELS[:-1]:
        assert label_name(*parse_label(name)) == name
    assert parse_label(NOISE) == NOISE
    assert parse_label("helpful_but_less_honest") == (HELP, HON)
    assert parse_label("harmless") == (HARM, None)
    with pytest.raises(ValueError):
        parse_label("helpful_but_less_helpful")
    assert tuple(load_hummer_prompt()["labels"]) == LABELS


def test_adc_hand_worked_example() -> None:
    # helpfulness: 5 pairs, 1 worse on honesty, 1 worse on harmlessness -> deltas -0.2, -0.2
    # harmlessness: 4 pairs, 2 worse on helpfulness -> deltas -0.5 (helpful), 0 (honest)
    # honesty: no pairs -> no terms. ADC = sqrt((0.04 + 0.04 + 0.25 + 0) / 4) = sqrt(0.0825)
    labels = (
        [(HELP, None)] * 3 + [(HELP, HON), (HELP, HARM)] + [(HARM, None)] * 2 + [(HARM, HELP)] * 2
    )
    assert adc(labels) == pytest.approx(math.sqrt(0.0825))  # 0.2872
    assert deviations(labels) == {
        HELP: {HON: -0.2, HARM: -0.2},
        HARM: {HELP: -0.5, HON: 0.0},
    }
    assert adc([(HON, None)] * 4) == 0.0
    assert adc([]) == 0.0


def _pool_labels() -> list:
    labels = [(HELP, None)] * 10 + [(HARM, None)] * 10 + [(HON, None)] * 10
    return labels + [(HELP, HON)] * 8 + [(HARM, HELP)] * 8 + [None] * 3


def test_selection_stays_under_threshold_and_is_maximal() -> None:
    labels = _pool_labels()
    kept = select_low_conflict(labels, 0.2, seed=0)
    mix = [labels[i] for i in kept]
    # worked out: 5 conflicts per cell give sqrt(2 * (5/15)^2 / 6) = 0.192 <= 0.2; a 6th gives 0.205
    assert adc(mix) == pytest.approx(math.sqrt(2 * (5 / 15) ** 2 / 6))
    assert mix.count((HELP, HON)) == 5 and mix.count((HARM, HELP)) == 5
    assert sum(1 for lab in mix if lab and lab[1] is None) == 30  # every clean pair kept
    assert None not in mix
    for extra in ((HELP, HON), (HARM, HELP)):
        assert adc([*mix, extra]) > 0.2
    assert select_low_conflict(labels, 0.2, seed=0) == kept  # deterministic
    assert all(labels[i][1] is None for i in select_low_conflict(labels, 0.0, seed=0))


def test_selection_with_budget() -> None:
    labels = _pool_labels()
    kept = select_low_conflict(labels, 0.2, seed=1, budget=20)
    mix = [labels[i] for i in kept]
    assert len(mix) == 20 and adc(mix) <= 0.2
    # proportional cut of 30 clean + 5 + 5 conflicts: 5 clean per dimension, 3 + 2 conflicts
    assert mix.count((HELP, HON)) == 3 and mix.count((HARM, HELP)) == 2


class ScriptedJudge:
    """Test double for a judge: the label is read from the pair's chosen text ("... #label")."""

    def __init__(self, log: list[int]) -> None:
        self.log = log

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def describe(self) -> dict[str, str]:
        return {"judge_backend": "scripted", "judge_model": "script"}

    def classify(self, items, labels):
        self.log.append(len(items))
        out = []
        for item in items:
            label = item.user.split("#", 1)[1].split()[0]
            ok = label in labels
            out.append(Verdict(label=label if ok else None, raw=f"[[{label}]]", parsed=ok))
        return out


def test_hummer_mix_with_cached_labels(tmp_path: Path) -> None:
    script = (
        ["helpful"] * 6
        + ["harmless"] * 4
        + ["harmless_but_less_helpful"] * 4
        + ["honest", "garbage"]
    )
    pool = [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "chosen": f"ans {i} #{lab}",
            "rejected": f"bad {i}",
            "source": "helpsteer",
            "dimension": "helpfulness",
        }
        for i, lab in enumerate(script)
    ]
    log: list[int] = []
    judge_cfg = {"backend": "local", "model": "scripted-judge"}

    def factory(cfg, cache_dir):
        return ScriptedJudge(log)

    settings = HummerSettings(threshold=0.2, adc="labels")
    pairs, stats = hummer_mix(
        pool, settings, judge_cfg, seed=0, cache_dir=tmp_path, judge_factory=factory
    )
    assert stats["adc"] <= 0.2 < stats["adc_labels_pool"]
    assert stats["unlabelled_pairs"] == 1 and stats["labelling"]["unparsed"] == 1
    assert stats["label_counts_pool"]["harmless_but_less_helpful"] == 4
    assert sum(stats["label_counts"].values()) == len(pairs)
    # 3 dimensions present -> 6 terms; harmlessness has 4 clean pairs, so k conflicts give
    # sqrt((k / (4 + k))^2 / 6): k = 3 -> 0.175 (kept), k = 4 -> 0.204 (over)
    assert stats["label_counts"]["harmless_but_less_helpful"] == 3
    assert log == [16]
    again, stats2 = hummer_mix(
        pool, settings, judge_cfg, seed=0, cache_dir=tmp_path, judge_factory=factory
    )
    assert again == pairs
    assert stats2["labelling"]["requests"] == 1  # only the unparsed one is asked again
    assert stats2["labelling"]["requests"] <= 0.1 * stats["labelling"]["requests"]
    assert stats2["labelling"]["cache_hits"] == 15


def test_tiny_local_judge_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    sizes = {
        d: 1 for d in ("helpsteer", "nectar", "ultrasafety", "truthy_dpo", "grath", "ultrafeedback")
    }
    files = write_pair_files(tmp_path / "pairs", sizes)
    work = MixContext(
        cache_dir=tmp_path / "cache",
        judge={"backend": "local", "model": str(tiny_model_dir), "device": "cpu", "batch_size": 6},
    )
    cfg = MixSettings.from_block({"hummer": {"threshold": 0.2, "adc": "labels"}})
    first = build_mix("hummer", cfg, files, GROUPS, tmp_path / "a.jsonl", context=work)
    stats = first["stats"]
    assert stats["unlabelled_pairs"] == 0  # the likelihood judge always answers a valid label
    assert sum(stats["label_counts_pool"].values()) == 6
    assert stats["adc"] <= 0.2
    assert stats["labelling"]["requests"] == 6
    second = build_mix("hummer", cfg, files, GROUPS, tmp_path / "b.jsonl", context=work)
    assert second["stats"]["labelling"]["requests"] == 0
    assert second["stats"]["labelling"]["cache_hits"] == 6
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()

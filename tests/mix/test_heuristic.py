"""Heuristic mixture: the (honesty + harmlessness) : helpfulness ratio is met exactly (rounding)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mix_helpers import GROUPS

from mixmerge.config import ConfigError
from mixmerge.io import read_json, read_jsonl
from mixmerge.mix import MixSettings, build_mix, heuristic_variants, mix_stats_path
from mixmerge.mix.heuristic import side_sizes
from mixmerge.mix.settings import HeuristicSettings

DEFAULTS = MixSettings()

HELPFUL = {"helpfulness", "helpful_honest", "helpful_harmless"}


@pytest.mark.parametrize("ratio", [0.2, 0.1, 0.05])
def test_ratio_exact_within_rounding(
    pair_files: dict[str, Path], tmp_path: Path, ratio: float
) -> None:
    out = tmp_path / "mix" / "heuristic.jsonl"
    settings = MixSettings.from_config({"seed": 3, "mixtures": {"heuristic": {}}})
    record = build_mix("heuristic", settings, pair_files, GROUPS, out, ratio=ratio)
    pairs = read_jsonl(out)
    helpful = sum(1 for p in pairs if p["dimension"] in HELPFUL)
    other = len(pairs) - helpful
    assert abs(other - ratio * helpful) <= 0.5
    stats = record["stats"]
    assert (stats["helpful_pairs"], stats["other_pairs"]) == (helpful, other)
    assert stats["ratio_achieved"] == pytest.approx(other / helpful)
    # the composition written next to the mix is the mix's real composition
    written = read_json(mix_stats_path(out))
    assert written == record
    by_group = written["composition"]["by_group"]
    assert sum(by_group.values()) == len(pairs) == written["composition"]["pairs"]
    for group, count in by_group.items():
        assert count == sum(1 for p in pairs if p["dimension"] == group)
    assert written["strategy"] == "heuristic" and written["seed"] == 3
    assert written["parameters"]["ratio"] == ratio
    # pair format kept, no duplicates
    assert set(pairs[0]) == {"prompt", "chosen", "rejected", "source", "dimension"}
    assert len({(p["source"], p["chosen"]) for p in pairs}) == len(pairs)


def test_sizes_and_proportional_allocation(pair_files: dict[str, Path], tmp_path: Path) -> None:
    # helpful side 150 pairs, other side 27 (ultrasafety 12, truthy 9, grath 6)
    assert side_sizes(150, 27, 0.1, None) == (150, 15)
    assert side_sizes(150, 27, 0.05, None) == (150, 8)  # 7.5 rounds half up
    assert side_sizes(150, 27, 0.2, None) == (135, 27)  # other side too small: helpful shrinks
    assert side_sizes(150, 27, 0.1, 50) == (45, 5)
    out = tmp_path / "m.jsonl"
    record = build_mix("heuristic", DEFAULTS, pair_files, GROUPS, out, ratio=0.1)
    by_dataset = record["composition"]["by_dataset"]
    # 15 other pairs split 12:9:6 by largest remainder -> 7, 5, 3; helpful side taken whole
    assert (by_dataset["ultrasafety"], by_dataset["truthy_dpo"], by_dataset["grath"]) == (7, 5, 3)
    assert by_dataset["helpsteer"] == 40 and by_dataset["nectar"] == 10


def test_seeded_and_deterministic(pair_files: dict[str, Path], tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{n}.jsonl" for n in "abc")
    for path, seed in ((a, 1), (b, 1), (c, 2)):
        build_mix("heuristic", MixSettings(seed=seed), pair_files, GROUPS, path, ratio=0.05)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_budget_and_config_sides(pair_files: dict[str, Path], tmp_path: Path) -> None:
    cfg = MixSettings.from_block(
        {"heuristic": {"budget": 50, "helpful_groups": ["helpfulness"], "other_groups": ["honesty"]}}
    )
    record = build_mix("heuristic", cfg, pair_files, GROUPS, tmp_path / "m.jsonl", ratio=0.1)
    assert record["composition"]["pairs"] <= 50
    assert set(record["composition"]["by_group"]) == {"helpfulness", "honesty"}
    assert record["stats"]["excluded_groups"] == [
        "harmlessness",
        "helpful_harmless",
        "helpful_honest",
    ]


def test_bad_config_errors(pair_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    both = MixSettings.from_block(
        {"heuristic": {"helpful_groups": ["honesty"], "other_groups": ["honesty"]}}
    )
    with pytest.raises(ValueError, match="both sides"):
        build_mix("heuristic", both, pair_files, GROUPS, out, ratio=0.1)
    with pytest.raises(ValueError, match="unknown group"):
        nope = MixSettings.from_block({"heuristic": {"other_groups": ["nope"]}})
        build_mix("heuristic", nope, pair_files, GROUPS, out, ratio=0.1)
    with pytest.raises(ValueError, match="needs a ratio"):
        build_mix("heuristic", DEFAULTS, pair_files, GROUPS, out)
    with pytest.raises(ValueError, match="unknown mix strategy"):
        build_mix("magic", DEFAULTS, pair_files, GROUPS, out)
    assert not out.exists()


def test_variant_labels() -> None:
    assert heuristic_variants(HeuristicSettings(ratios=(0.2, 0.1, 0.05))) == {
        "1to5": 0.2,
        "1to10": 0.1,
        "1to20": 0.05,
    }


def test_constant_size_gives_three_mixes_of_equal_size(
    pair_files: dict[str, Path], tmp_path: Path
) -> None:
    """size: constant holds the total fixed, so the ratios differ only in proportion."""
    from mixmerge.mix.heuristic import constant_sizes

    # helpful 150, other 27: the paper totals are 162 (1/5), 165 (1/10), 158 (1/20): T = 158
    ratios = [0.2, 0.1, 0.05]
    assert [constant_sizes(150, 27, r, ratios, None) for r in ratios] == [
        (132, 26),  # 158 / 1.2 = 131.67 -> 132
        (144, 14),  # 158 / 1.1 = 143.64 -> 144
        (150, 8),  # 158 / 1.05 = 150.48 -> 150
    ]
    cfg = MixSettings.from_block({"heuristic": {"ratios": ratios, "size": "constant"}})
    sizes = set()
    for ratio in ratios:
        out = tmp_path / f"{ratio}.jsonl"
        record = build_mix("heuristic", cfg, pair_files, GROUPS, out, ratio=ratio)
        pairs = read_jsonl(out)
        helpful = sum(1 for p in pairs if p["dimension"] in HELPFUL)
        assert abs((len(pairs) - helpful) - ratio * helpful) <= 1  # the ratio, within rounding
        assert record["stats"]["size"] == "constant" and record["stats"]["pairs"] == len(pairs)
        sizes.add(len(pairs))
    assert sizes == {158}
    with pytest.raises(ConfigError, match="'mixtures.heuristic.size': 'big' .allowed: paper, "):
        MixSettings.from_block({"heuristic": {"size": "big"}})

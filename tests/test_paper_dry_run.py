"""The paper configs dry-run offline to the whole paper: job counts per rule are what they must be."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _job_counts(config: Path) -> dict[str, int]:
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "8", "--configfile", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = proc.stdout.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


@pytest.mark.parametrize("name", ["llama3-8b", "mistral-7b"])
def test_paper_dry_run_job_counts(name: str) -> None:
    path = REPO / "config" / "paper" / f"{name}.yaml"
    config = yaml.safe_load(path.read_text())
    counts = _job_counts(path)
    groups = len(config["groups"])
    candidates = len(config["train"]["sweep"]["beta"]) * len(
        config["train"]["sweep"]["learning_rate"]
    )
    ratios = len(config["mixtures"]["heuristic"]["ratios"])
    methods = len(config["merge"]["methods"])
    settings = len(config["merge"]["settings"])
    sweeps = config["merge"]["sweeps"]
    variants = sum(len(s["methods"]) * len(s["values"]) for s in sweeps.values())
    stages = len(config["continual"]["stages"])
    assert (groups, candidates, stages, methods) == (5, 8, 3, 15)  # the paper's grid
    assert counts["train_candidate"] == groups * candidates == 40
    assert counts["select_candidate"] == groups
    assert counts["train_continual_stage"] == stages
    assert counts["mix_heuristic_pairs"] == ratios == 3
    assert config["mixtures"]["sweep"] == "same"  # mixtures get the group models' grid
    mix_sets = ratios + 2  # + ArmoRM + Hummer
    assert counts["train_mix"] == mix_sets * candidates == 40
    assert counts["select_mix"] == 3  # the best of each strategy (heuristic: ratio x candidate)
    assert counts["merge_models"] == counts["merge_recipe"] == methods * settings == 30
    assert counts["merge_sweep_models"] == variants == 5 * 5 + 7 * 5
    models = 1 + groups * candidates + stages + mix_sets * candidates + methods * settings + variants
    assert counts["evaluate_model"] == models == 174
    assert counts["dataset_pairs"] == 10
    assert counts["total"] == 467


def _null_pins(node: object, where: str = "") -> list[str]:
    """Config paths of every `revision` / `sha256` key left null (or a null entry of a map)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key in ("revision", "sha256"):
                if value is None or (isinstance(value, dict) and None in value.values()):
                    found.append(path)
            else:
                found += _null_pins(value, path)
    return found


@pytest.mark.parametrize("name", ["llama3-8b", "mistral-7b"])
def test_paper_configs_pin_every_benchmark_file_judge_and_model(name: str) -> None:
    """No null pin, and every model, URL file and judged benchmark dataset has one. Left to
    `mixmerge fetch --lock`: the training sets and lm-eval's datasets (lm-eval's own task files
    name those, at no revision)."""
    from mixmerge.config import load
    from mixmerge.fetch import config_artifacts
    from mixmerge.hub import LM_EVAL_DATA

    path = REPO / "config" / "paper" / f"{name}.yaml"
    assert _null_pins(yaml.safe_load(path.read_text())) == []
    lm_eval_repos = {repo for repo, _, _ in LM_EVAL_DATA.values()}
    unpinned = [
        art.describe()
        for art in config_artifacts(load(str(path)))
        if not (art.revision or art.sha256)
        and (art.kind in ("model", "url") or art.id not in lm_eval_repos)
        and not all(use.startswith("datasets.") for use in art.used_by)
    ]
    assert unpinned == []

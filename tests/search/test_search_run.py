"""`mixmerge search run` end to end on the tiny model: the same seed gives the same trials and
front; a search killed with SIGKILL mid-trial resumes without rerunning a finished trial; a trial
merged into the resident model scores exactly as the same merge written to disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MIXMERGE = str(Path(sys.executable).with_name("mixmerge"))
GROUPS = ("helpfulness", "honesty", "harmlessness")
BENCHMARKS = ("arc_challenge", "truthfulqa_mc2", "salad_bench")  # helpful, honest, harmless


def _group_model(base: Path, out: Path, seed: int) -> None:
    """A stand-in for a DPO model: the base plus a seeded task vector (real weights on disk)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(base, out)
    tensors = load_file(str(base / "model.safetensors"))
    gen = torch.Generator().manual_seed(seed)
    moved = {
        k: (v + 0.05 * torch.randn(v.shape, generator=gen, dtype=v.dtype)).contiguous()
        if v.is_floating_point() else v
        for k, v in tensors.items()
    }
    save_file(moved, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "mixmerge_hash.json").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    from mixmerge.evaluate.dev_items import write_dev_items
    from mixmerge.tiny.build import write_benchmark_fixtures

    root = tmp_path_factory.mktemp("search")
    results = root / "results" / "t"
    write_benchmark_fixtures(results / "fixtures" / "benchmarks", 8, 0)
    shutil.copytree(tiny_model_dir, results / "models" / "base")
    for i, group in enumerate(GROUPS):
        _group_model(tiny_model_dir, results / "models" / "dpo" / group / "c", seed=i + 1)
        (results / "selection" / "dpo").mkdir(parents=True, exist_ok=True)
        (results / "selection" / "dpo" / f"{group}.json").write_text(json.dumps({"selected": f"dpo/{group}/c"}))
    text = (REPO / "config" / "config.yaml").read_text().replace("results/tiny/", "results/t/")
    cfg = yaml.safe_load(text)
    cfg["run"] = "t"
    cfg["evaluate"]["benchmarks"] = {b: cfg["evaluate"]["benchmarks"][b] for b in BENCHMARKS}
    cfg["evaluate"]["judge"]["model"] = "results/t/models/base"
    cfg["merge"]["settings"] = {"static": list(GROUPS)}
    cfg["search"].update(trials=3, items=2, benchmarks={})
    cfg["search"]["spaces"] = {"ties": cfg["search"]["spaces"]["ties"]}
    (root / "search.yaml").write_text(yaml.safe_dump(cfg))
    disk = {**cfg, "search": {**cfg["search"], "in_memory": False}}
    (root / "search-disk.yaml").write_text(yaml.safe_dump(disk))
    other = {**cfg, "search": {**cfg["search"], "seed": 1}}
    (root / "search-seed1.yaml").write_text(yaml.safe_dump(other))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        write_dev_items(cfg["evaluate"]["benchmarks"], {}, [], 2, 0, results / "search" / "dev")
    finally:
        os.chdir(cwd)
    return root


def _search(root: Path, out: str, config: str = "search.yaml", wait: bool = True):
    cmd = [
        MIXMERGE, "search", "run", "--config", config, "--space", "ties",
        "--dev", "results/t/search/dev", "--out", f"results/t/search/{out}",
        "--recipes", f"results/t/recipes/{out}",
    ]
    if not wait:
        return subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((root / "results/t/search" / out / "front.json").read_text())


def _completed(root: Path, out: str) -> dict[int, str]:
    """trial number -> completion time of the finished trials of a study (read from its storage)."""
    import optuna

    db = root / "results/t/search" / out / "study.db"
    if not db.is_file():
        return {}
    try:
        study = optuna.load_study(study_name="ties", storage=f"sqlite:///{db}")
    except KeyError:  # created but not yet committed
        return {}
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return {t.number: str(t.datetime_complete) for t in done}


def _sequence(front: dict) -> list[tuple]:
    return [(json.dumps(t["params"], sort_keys=True), t["objectives"]) for t in front["trials"]]


def test_search_is_reproducible_resumable_and_exact_in_memory(run_dir: Path) -> None:
    first = _search(run_dir, "a")
    assert len(first["trials"]) == 3 and first["failed_trials"] == 0
    assert set(first["selected"]) == {"best_avg", "knee"}
    assert first["front"] and all(n in [t["number"] for t in first["trials"]] for n in first["front"])
    assert first["hypervolume"] == sorted(first["hypervolume"])  # never shrinks
    recipe = yaml.safe_load((run_dir / "results/t/recipes/a/knee.yaml").read_text())
    assert recipe["merge_method"] == "ties" and len(recipe["models"]) == 3
    # a finished study run again does nothing; under another seed it is refused, not mixed
    assert _search(run_dir, "a")["trials"] == first["trials"]
    refused = subprocess.run(
        [MIXMERGE, "search", "run", "--config", "search-seed1.yaml", "--space", "ties", "--dev",
         "results/t/search/dev", "--out", "results/t/search/a", "--recipes", "results/t/recipes/a"],
        cwd=run_dir, capture_output=True, text=True, timeout=300,
    )
    assert refused.returncode == 1 and "holds a study of another space, sampler, seed" in refused.stderr

    # killed mid-trial with SIGKILL, after its first trial finished; then the same command
    proc = _search(run_dir, "b", wait=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (
        _completed(run_dir, "b") and (run_dir / "results/t/search/b/trials/1/recipe.yaml").is_file()
    ):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _completed(run_dir, "b")
    assert len(before) < 3, "the search finished before it could be killed"
    resumed = _search(run_dir, "b")
    after = _completed(run_dir, "b")
    rerun = [n for n, when in before.items() if after.get(n) != when]
    print(f"\nsearch killed after {len(before)} finished trial(s); finished trials re-run: {len(rerun)}; "
          f"interrupted trials: {resumed['failed_trials']}")
    assert rerun == []
    assert resumed["failed_trials"] == 1
    assert _sequence(resumed) == _sequence(first)  # the same trials, in the same order
    on_front = [[t["objectives"] for t in f["trials"] if t["number"] in f["front"]] for f in (resumed, first)]
    assert on_front[0] == on_front[1]
    assert resumed["hypervolume"] == first["hypervolume"]

    # the same trials merged to disk (in_memory: false) score exactly the same
    disk = _search(run_dir, "c", config="search-disk.yaml")
    assert _sequence(disk) == _sequence(first)
    assert not list((run_dir / "results/t/search/c/trials").glob("*/model"))  # nothing kept
    for label, front in (("in memory", first), ("on disk", disk)):
        per_trial = [round(t["merge_seconds"] + t["eval_seconds"], 2) for t in front["trials"]]
        print(f"{label}: seconds per trial (merge + eval) {per_trial}; cache per trial "
              f"{[t['cache'] for t in front['trials']]}")

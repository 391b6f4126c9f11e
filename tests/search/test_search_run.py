"""`mixmerge search run` end to end on the tiny model: the same seed gives the same trials and
front; a search killed with SIGKILL mid-trial resumes without rerunning a finished trial; a study
is never continued under another seed. (That a trial merged into the resident model is the merge
written to disk, byte for byte, is tests/merge/test_resident.py's.)"""

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
    cfg["search"].update(trials=3, items=1, benchmarks={})
    cfg["search"]["spaces"] = {"ties": cfg["search"]["spaces"]["ties"]}
    (root / "search.yaml").write_text(yaml.safe_dump(cfg))
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


def test_search_is_reproducible_and_resumable(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # run A in this process (the search's API); run B, killed and resumed, by the CLI
    from mixmerge.runtime.generation import release_models
    from mixmerge.search.run import Search, write_outputs

    monkeypatch.chdir(run_dir)
    cfg = yaml.safe_load((run_dir / "search.yaml").read_text())
    out = Path("results/t/search/a")
    try:
        first = Search(cfg, "ties", Path("results/t/search/dev"), out).run()
    finally:
        release_models()  # the resident model is pinned in this process
    write_outputs(first, out, Path("results/t/recipes/a"))
    assert len(first["trials"]) == 3 and first["failed_trials"] == 0
    assert set(first["selected"]) == {"best_avg", "knee"}
    assert first["front"] and all(n in [t["number"] for t in first["trials"]] for n in first["front"])
    assert first["hypervolume"] == sorted(first["hypervolume"])  # never shrinks
    from mixmerge.report.search_figure import search_figure

    drawn = search_figure([out / "front.json"], run_dir / "figures" / "search.png")
    assert [p.suffix for p in drawn] == [".png", ".pdf"] and all(p.stat().st_size for p in drawn)
    recipe = yaml.safe_load((run_dir / "results/t/recipes/a/knee.yaml").read_text())
    assert recipe["merge_method"] == "ties" and len(recipe["models"]) == 3
    # under another seed the study is refused, not mixed
    other = yaml.safe_load((run_dir / "search.yaml").read_text())
    other["search"]["seed"] = 1
    with pytest.raises(ValueError, match="holds a study of another space, sampler, seed"):
        Search(other, "ties", Path("results/t/search/dev"), Path("results/t/search/a")).study()

    # killed with SIGKILL as its second trial starts (its first finished); then the same command.
    # The kill lands inside a trial of a fraction of a second: a search that finished before the
    # kill landed is tried again in a fresh folder.
    for attempt in range(4):
        out = f"b{attempt}"
        proc = _search(run_dir, out, wait=False)
        started = run_dir / "results/t/search" / out / "trials/1/recipe.yaml"
        deadline = time.monotonic() + 300
        while not started.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = _completed(run_dir, out)
        if len(before) < 3:
            break
    assert started.is_file() and 0 < len(before) < 3, f"no kill landed mid-trial: {before}"
    try:  # the same study, resumed (in this process: the CLI's path is the killed run's)
        resumed = Search(cfg, "ties", Path("results/t/search/dev"), Path("results/t/search") / out).run()
    finally:
        release_models()
    after = _completed(run_dir, out)
    rerun = [n for n, when in before.items() if after.get(n) != when]
    print(f"\nsearch killed after {len(before)} finished trial(s); finished trials re-run: {len(rerun)}; "
          f"interrupted trials: {resumed['failed_trials']}")
    assert rerun == []
    assert resumed["failed_trials"] == 1
    assert _sequence(resumed) == _sequence(first)  # the same trials, in the same order
    on_front = [[t["objectives"] for t in f["trials"] if t["number"] in f["front"]] for f in (resumed, first)]
    assert on_front[0] == on_front[1]
    assert resumed["hypervolume"] == first["hypervolume"]

    per_trial = [round(t["merge_seconds"] + t["eval_seconds"], 2) for t in first["trials"]]
    print(f"seconds per trial (merge + eval) {per_trial}; cache {[t['cache'] for t in first['trials']]}")

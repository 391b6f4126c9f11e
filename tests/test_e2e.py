"""End to end: the default (tiny) config runs the whole DAG offline; a rerun has nothing to do."""

from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
pytestmark = pytest.mark.xdist_group("e2e")  # one worker builds the tiny run once


# The slice the test runs: the tiny default with every stage and rule kept, but one sweep
# candidate, one heuristic ratio, one continual stage, two merge methods (one of them swept) and
# a few benchmarks covering each harness (lm-eval, evalplus, LLM judge). The full tiny DAG is what the README's first
# command runs.
SLICE_BENCHMARKS = ["gsm8k", "arc_challenge", "humaneval_plus", "mt_bench", "or_bench"]
SLICE_METHODS = ["weight_average", "dare_ties"]


def slice_config(config: dict) -> dict:
    config = copy.deepcopy(config)
    config["train"]["sweep"] = {
        "beta": [0.1],
        "learning_rate": config["train"]["sweep"]["learning_rate"][:1],
    }
    config["mixtures"]["heuristic"]["ratios"] = [0.1]
    config["continual"]["stages"] = config["continual"]["stages"][:1]
    methods = config["merge"]["methods"]
    config["merge"]["methods"] = {m: methods[m] for m in SLICE_METHODS if m in methods}
    swept = "dare_ties" if "dare_ties" in config["merge"]["methods"] else "task_arithmetic"
    config["merge"]["sweeps"] = {"seed": {"methods": [swept], "values": [1]}}
    if swept == "dare_ties":
        config["merge"]["sweeps"]["density"] = {"methods": [swept], "values": [0.3]}
    benchmarks = config["evaluate"]["benchmarks"]
    config["evaluate"]["benchmarks"] = {b: benchmarks[b] for b in SLICE_BENCHMARKS}
    return config


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "slice.yaml"),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("tiny-run")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    (workdir / "slice.yaml").write_text(yaml.safe_dump(slice_config(config)))
    proc = _snakemake(workdir, "--cores", "2")
    if proc.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-3000:]}" for p in (workdir / "results").rglob("*.log")
        )
        pytest.fail(f"snakemake failed:\n{proc.stderr[-5000:]}\n{logs[-20000:]}")
    return workdir


@pytest.mark.e2e
def test_tables_have_every_model_and_real_numbers(tiny_run: Path) -> None:
    config = yaml.safe_load((tiny_run / "slice.yaml").read_text())
    rows = list(csv.DictReader((tiny_run / "results/tiny/tables/static.csv").open()))
    merges = [r for r in rows if r["section"] == "Model merging"]
    assert sorted(r["model"] for r in merges) == sorted(
        f"merge/static/{m}" for m in config["merge"]["methods"]
    )
    groups = [r for r in rows if r["section"] == "Group model"]
    assert len(groups) == len(config["groups"])
    selected = {r["model"] for r in groups}
    assert all(
        m.startswith("dpo/") and m.count("/") == 2 for m in selected
    )  # the selected candidates
    from mixmerge.report.scores import COLUMNS as columns

    for row in [r for r in rows if r["section"] == "Base"] + groups + merges:
        for bench in config["evaluate"]["benchmarks"]:
            value = float(row[columns[bench]])
            assert 0.0 <= value <= (10.0 if bench == "mt_bench" else 100.0)
    for table in ("static", "continual", "ablation"):
        for ext in ("md", "csv", "tex", "html"):
            assert (tiny_run / f"results/tiny/tables/{table}.{ext}").stat().st_size > 0
    continual = list(csv.DictReader((tiny_run / "results/tiny/tables/continual.csv").open()))
    scored = [
        r["model"] for r in continual if r["section"] == "Continual" and r["AVG"] not in ("", "n/a")
    ]
    assert scored == [
        f"continual/stage{k}" for k in range(1, len(config["continual"]["stages"]) + 1)
    ]
    figures = sorted(p.name for p in (tiny_run / "results/tiny/figures").glob("*.png"))
    assert figures and all(
        (tiny_run / "results/tiny/figures" / f).stat().st_size > 1000 for f in figures
    )


@pytest.mark.e2e
def test_rerun_has_nothing_to_do(tiny_run: Path) -> None:
    proc = _snakemake(tiny_run, "-n", "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.e2e
def test_every_model_loads_offline(tiny_run: Path) -> None:
    from transformers import AutoModelForCausalLM

    model_dirs = sorted(p.parent for p in (tiny_run / "results/tiny/models").rglob("config.json"))
    assert len(model_dirs) >= 8
    for model_dir in model_dirs:
        AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)


@pytest.mark.e2e
def test_every_job_left_a_log_and_no_temp_files(tiny_run: Path) -> None:
    logs = list((tiny_run / "results/tiny/logs").rglob("*.log"))
    assert len(logs) >= 40
    assert not [p for p in (tiny_run / "results").rglob("*.tmp")]


@pytest.mark.e2e
def test_snakemake_html_report_bundles_tables_figures_and_config(tiny_run: Path) -> None:
    report = tiny_run / "report.html"
    proc = _snakemake(tiny_run, "--report", str(report))
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text()
    for name in ("static.md", "continual.md", "pareto.png", "config.html"):
        assert name in html, f"{name} is not in the HTML report"


@pytest.mark.e2e
def test_evaluation_logs_carry_no_git_noise(tiny_run: Path) -> None:
    """lm-eval's own `git describe` would print "fatal: not a git repository" into every
    evaluation log (its cwd is a scratch dir); mixmerge asks git quietly instead."""
    logs = list((tiny_run / "results/tiny/logs/evaluate").rglob("*.log"))
    assert logs
    noisy = [p.name for p in logs if "fatal: not a git repository" in p.read_text()]
    assert not noisy

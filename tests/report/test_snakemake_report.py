"""`snakemake --report` over report.smk for a tiny fake run: the tables, figures, config and
rule graph end up in one self-contained HTML file."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from report_helpers import fake_run, tiny_models

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# common.smk's input functions are stood in for here: the scores and selections on disk.
SNAKEFILE = """
from pathlib import Path

configfile: "config.yaml"

R = f"results/{config['run']}"
LOGS = f"{R}/logs"
CONFIG = "config.yaml"
PIN_GPUS = "bash PIN_SCRIPT"


def all_score_files():
    return sorted(str(p) for p in Path(R, "scores").rglob("*.json"))


def selection_files():
    return sorted(str(p) for p in Path(R, "selection").rglob("*.json"))


def diagnostics_inputs(setting):
    return {"recipe": f"{R}/recipes/{setting}/ties.yaml"}


include: "REPORT_SMK"


rule all:
    input:
        report_outputs(),
    default_target: True
"""


def _env() -> dict[str, str]:
    """The rules run the venv's own `mixmerge` entry point."""
    assert (BIN / "mixmerge").is_file(), f"no mixmerge entry point in {BIN}: install the package"
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _snakemake(workdir: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--directory", str(workdir), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-2000:]}" for p in (workdir / "results").rglob("*.log")
        )
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-4000:]}\n{logs}")
    return proc.stdout + proc.stderr


def _embedded(report: str, filename: str) -> bytes:
    m = re.search(
        r'"data_uri": "data:[^;"]+;[^"]*filename=' + re.escape(filename) + r';base64,([^"]+)"',
        report,
    )
    assert m, f"{filename} not embedded in the report"
    return base64.b64decode(m.group(1))


def test_snakemake_report(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "results" / "fake")
    tiny_models(run)  # models + recipes/static/ties.yaml for the diagnostics rule
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "run": "fake",
                "merge": {"settings": {"static": None}},
                "report": {"settings": ["static"]},
            }
        )
    )
    report_smk = REPO / "workflow" / "rules" / "report.smk"
    (tmp_path / "Snakefile").write_text(
        SNAKEFILE.replace("REPORT_SMK", str(report_smk)).replace(
            "PIN_SCRIPT", str(REPO / "workflow" / "profiles" / "default" / "pin-gpus.sh")
        )
    )
    env = _env()
    _snakemake(tmp_path, env, "--cores", "2")
    _snakemake(tmp_path, env, "--report", "report.html")
    report = (tmp_path / "report.html").read_text()
    tables = run / "tables"
    for name in ("static", "continual", "ablation", "comparisons"):
        for ext in ("html", "csv", "tex"):
            assert _embedded(report, f"{name}.{ext}") == (tables / f"{name}.{ext}").read_bytes()
    static = _embedded(report, "static.html").decode()
    assert "Helpful&amp;Honest" in static and "R-TSVM" in static and "<b>" in static
    for figure in ("tradeoff", "seeds", "density", "pareto", "diagnostics_static"):
        assert _embedded(report, f"{figure}.png")[:4] == b"\x89PNG"
    assert "Static setting</strong>" in report  # a caption, rendered
    config_page = _embedded(report, "config.html").decode()
    assert "Configuration (config.yaml)" in config_page and "fake" in config_page
    rulegraph = re.search(r"var rulegraph_spec = (.*)", report)
    assert rulegraph and "report_diagnostics_figure" in rulegraph.group(1)
    assert (run / "diagnostics" / "static.json").is_file()

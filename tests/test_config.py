"""Config validation: the default config passes; each kind of mistake names its key in one line."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mixmerge.config import ConfigError, load, validate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_config() -> dict:
    return load(REPO / "config" / "config.yaml")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["train"].update(bta=0.1), "unknown key 'train.bta'"),
        (lambda c: c.update(trian={}), "unknown key 'trian'"),
        (lambda c: c["train"].update(beta="high"), "'train.beta': 'high' is not of type 'number'"),
        (
            lambda c: c["groups"]["honesty"].append("truthy"),
            "'groups.honesty': unknown dataset 'truthy'",
        ),
        (
            lambda c: c["merge"]["methods"].update(x={"merge_method": "tiez"}),
            "'merge.methods.x.merge_method': 'tiez'",
        ),
        (
            lambda c: c["evaluate"]["benchmarks"].update(gsm9k={}),
            "unknown name 'evaluate.benchmarks.gsm9k'",
        ),
        (lambda c: c["datasets"]["grath"].update(loader="csv"), "'datasets.grath.loader'"),
        (lambda c: c.pop("train"), "'train' is a required property"),
    ],
)
def test_bad_config_names_the_key(default_config: dict, mutate, expected: str) -> None:
    config = copy.deepcopy(default_config)
    mutate(config)
    with pytest.raises(ConfigError) as info:
        validate(config)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_paper_configs_validate() -> None:
    for path in sorted((REPO / "config" / "paper").glob("*.yaml")):
        load(path)


def test_the_catalog_names_the_benchmarks_a_config_may_set(tmp_path: Path) -> None:
    """The schema's benchmark names are the catalog's (filled in when a config is validated)."""
    from mixmerge.catalog import catalog
    from mixmerge.config import ConfigError, validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for name in catalog():
        config["evaluate"]["benchmarks"][name] = {}
    validate(config)
    config["evaluate"]["benchmarks"]["truthful_qa"] = {}
    with pytest.raises(ConfigError, match="unknown name 'evaluate.benchmarks.truthful_qa'.*xstest"):
        validate(config)


def test_dry_run_fails_on_misspelled_key(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["train"]["lerning_rate"] = 1e-4
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(snakemake), "-n", "--cores", "1", "--configfile", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "unknown key 'train.lerning_rate'" in proc.stderr + proc.stdout


def _paper() -> dict:
    return load(REPO / "config" / "paper" / "llama3-8b.yaml")


def test_missing_api_keys_names_the_variable_and_its_users() -> None:
    from mixmerge.judge.settings import missing_api_keys

    config = _paper()
    assert missing_api_keys(config, {}) == {
        "OPENAI_API_KEY": [
            "evaluate.benchmarks.mt_bench",
            "evaluate.benchmarks.halueval_wild",
            "evaluate.benchmarks.or_bench",
            "mixtures.hummer",  # judge: null -> the evaluation judge
        ]
    }  # salad_bench is judged by a local MD-Judge: no key
    assert missing_api_keys(config, {"OPENAI_API_KEY": "sk-x"}) == {}
    config["evaluate"]["benchmarks"]["or_bench"]["judge"] = {"api_key_env": "OTHER_KEY"}
    config["mixtures"]["hummer"]["judge"] = {"backend": "openai", "model": "m", "api_key_env": None}
    assert missing_api_keys(config, {"OPENAI_API_KEY": "sk-x"}) == {
        "OTHER_KEY": ["evaluate.benchmarks.or_bench"]
    }
    tiny = load(REPO / "config" / "config.yaml")  # local judges only
    assert missing_api_keys(tiny, {}) == {}


def test_judged_benchmarks_are_the_ones_that_use_a_judge() -> None:
    """A declaration's `judged` flag (what the key warning and fetch read) says what its runner
    does: the runner module (and any hook) calls a judge exactly when it is set."""
    from mixmerge.catalog import catalog
    from mixmerge.evaluate.registry import RUNNERS

    for bench in catalog().values():
        modules = [RUNNERS[bench.runner].split(":")[0]]
        if bench.options.get("hook"):
            modules.append(bench.options["hook"])
        sources = "".join(
            (REPO / "src" / f"{m.replace('.', '/')}.py").read_text() for m in modules
        )
        assert ("run_judge(" in sources or "judge_rows(" in sources) == bench.judged, bench.id


def test_dry_run_warns_about_a_missing_api_key_and_never_prints_one(tmp_path: Path) -> None:
    import os

    snakemake = Path(sys.executable).with_name("snakemake")
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    outputs = {}
    for key in (None, "sk-never-printed-123"):
        run_env = env if key is None else {**env, "OPENAI_API_KEY": key}
        proc = subprocess.run(
            [str(snakemake), "-n", "-q", "--cores", "1", "--directory", str(tmp_path),
             "--configfile", str(REPO / "config" / "paper" / "llama3-8b.yaml")],
            cwd=REPO, capture_output=True, text=True, timeout=300, env=run_env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs[key] = proc.stdout + proc.stderr
    assert (
        "warning: OPENAI_API_KEY is not set: the API judge of evaluate.benchmarks.mt_bench, "
        "evaluate.benchmarks.halueval_wild, evaluate.benchmarks.or_bench, mixtures.hummer "
        "reads its key from it"
    ) in outputs[None]
    assert "OPENAI_API_KEY" not in outputs["sk-never-printed-123"]
    assert "sk-never-printed-123" not in outputs["sk-never-printed-123"]

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


def test_merge_method_enum_matches_registry() -> None:
    from mixmerge.merge import METHOD_NAMES

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    enum = schema["$defs"]["merge_method"]["properties"]["merge_method"]["enum"]
    assert set(METHOD_NAMES) <= set(enum)


def test_benchmark_enum_matches_report_columns() -> None:
    from mixmerge.report.tables import COLUMNS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    enum = schema["properties"]["evaluate"]["properties"]["benchmarks"]["propertyNames"]["enum"]
    assert list(enum) == list(COLUMNS)


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

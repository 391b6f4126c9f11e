"""Figures: every figure is written (png + pdf) with data and, without data, as "no data yet"."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_helpers import tiny_models

from mixmerge.cli import build_parser
from mixmerge.report.diagnostics_figure import write_diagnostics_figure
from mixmerge.report.figures import (
    FIGURES,
    model_kind,
    model_label,
    pareto_front,
    write_figures,
)

PNG = b"\x89PNG"


def _check(paths: list[Path], names: list[str]) -> None:
    assert sorted(p.name for p in paths) == sorted(
        f"{n}.{e}" for n in names for e in ("png", "pdf")
    )
    for path in paths:
        head = path.read_bytes()[:4]
        assert head == (PNG if path.suffix == ".png" else b"%PDF"), path


def test_figures_with_data(run_dir: Path, tmp_path: Path) -> None:
    _check(write_figures(run_dir / "scores", tmp_path / "fig"), list(FIGURES))
    # the figures with data are larger than "no data yet" placeholders
    empty = tmp_path / "empty"
    (empty / "scores").mkdir(parents=True)
    placeholders = write_figures(empty / "scores", tmp_path / "nodata")
    _check(placeholders, list(FIGURES))
    for name in FIGURES:
        full = (tmp_path / "fig" / f"{name}.png").stat().st_size
        assert full > (tmp_path / "nodata" / f"{name}.png").stat().st_size


def test_diagnostics_figure_via_cli(tmp_path: Path) -> None:
    recipe = tiny_models(tmp_path)
    out = tmp_path / "diagnostics" / "static.json"
    parser = build_parser()
    args = parser.parse_args(["diagnose", str(recipe), str(out)])
    args.func(args)
    args = parser.parse_args(["report", "diagnostics", str(out), "--out", str(tmp_path / "f")])
    args.func(args)
    _check(sorted((tmp_path / "f").iterdir()), ["diagnostics_static"])
    # a missing diagnostics file gives a placeholder, not a crash
    _check(
        write_diagnostics_figure(tmp_path / "continual.json", tmp_path / "g"),
        ["diagnostics_continual"],
    )


def test_diagnostics_figure_rejects_other_json(tmp_path: Path) -> None:
    bad = tmp_path / "static.json"
    bad.write_text('{"layers": [{"sign_conflict": 0.5}]}')
    with pytest.raises(ValueError, match="not a diagnostics file"):
        write_diagnostics_figure(bad, tmp_path / "f")


def test_report_subverbs_parse_only_their_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["report", "tables", "--scores", "s", "--out", "t", "--seed", "3"])
    assert (args.report_verb, args.scores, args.out, args.seed, args.bootstrap) == (
        "tables",
        "s",
        "t",
        3,
        None,  # left out: write_tables' default (config report.bootstrap's)
    )
    args = parser.parse_args(["report", "config-page", "--config", "c.yaml", "--out", "c.html"])
    assert (args.config, args.out) == ("c.yaml", "c.html")
    for argv in (
        ["report"],  # a subverb is required
        ["report", "diagnostics", "d.json", "--out", "f", "--scores", "s"],
        ["report", "config-page", "--config", "c.yaml", "--bootstrap", "10", "--out", "c"],
        ["report", "figures", "--out", "f"],  # --scores is required
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)


def test_pareto_front() -> None:
    points = [(1.0, 5.0), (2.0, 4.0), (1.5, 3.0), (3.0, 1.0), (2.0, 4.0), (0.5, 0.5)]
    assert pareto_front(points) == [0, 1, 4, 3]  # (1.5, 3) and (0.5, 0.5) are dominated


def test_labels_and_kinds() -> None:
    assert model_label("dpo/helpful_honest/b0.1-lr5e-07") == "Helpful&Honest b0.1-lr5e-07"
    assert model_label("merge/continual/r_tsvm") == "R-TSVM (cont.)"
    assert model_label("merge/sweep/dare_ties/seed2") == "DARE-TIES seed2"
    assert model_kind("merge/sweep/dare_ties/seed2") == "merge sweep"
    assert model_kind("merge/static/ties") == "merge (static)"
    assert model_kind("mix/heuristic/0.1") == "data mixture"

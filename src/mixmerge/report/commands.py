"""The `mixmerge report` subverbs, each with only the options it needs:

    mixmerge report tables      --scores DIR --out DIR [--selection DIR] [--bootstrap N]
                                [--alpha A] [--seed S]
    mixmerge report figures     (the same options; --out is the figures directory)
    mixmerge report diagnostics JSON... --out DIR    # draws the files of `mixmerge diagnose`
    mixmerge report config-page --config YAML --out HTML

mixmerge/cli.py adds them with `add_report_parser`, so the report stage owns its options and
there is one parser. Options left out keep the defaults of the functions they reach (the
config's report.bootstrap, report.alpha and seed defaults); parsing imports nothing heavy.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("mixmerge")


def _tables(args: argparse.Namespace) -> list[Path]:
    from mixmerge.report.tables import write_tables

    return write_tables(Path(args.scores), Path(args.out), _selection(args), **_uncertainty(args))


def _figures(args: argparse.Namespace) -> list[Path]:
    from mixmerge.report.figures import write_figures

    return write_figures(Path(args.scores), Path(args.out), _selection(args), **_uncertainty(args))


def _diagnostics(args: argparse.Namespace) -> list[Path]:
    from mixmerge.report.diagnostics_figure import write_diagnostics_figure

    return [p for diag in args.json for p in write_diagnostics_figure(Path(diag), Path(args.out))]


def _config_page(args: argparse.Namespace) -> list[Path]:
    from mixmerge.report.config_page import write_config_page

    return [write_config_page(Path(args.config), Path(args.out))]


def _selection(args: argparse.Namespace) -> Path | None:
    return Path(args.selection) if args.selection else None


def _uncertainty(args: argparse.Namespace) -> dict[str, Any]:
    given = {"bootstrap": args.bootstrap, "alpha": args.alpha, "seed": args.seed}
    return {k: v for k, v in given.items() if v is not None}


def _score_args(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument(
        "--scores",
        required=True,
        metavar="DIR",
        help="scores directory (<model id>/<benchmark>.json)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help=out_help)
    p.add_argument(
        "--selection",
        metavar="DIR",
        help="selection directory (dpo/<group>.json, mix/<strategy>.json); "
        "default <scores>/../selection when it exists",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="bootstrap resamples of the items for the intervals and paired tests "
        "(config report.bootstrap; its default when left out)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        metavar="A",
        help="significance level (config report.alpha; its default)",
    )
    p.add_argument(
        "--seed", type=int, metavar="S", help="bootstrap seed (config seed; its default)"
    )


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `report` and its subverbs to the main CLI's subparsers; return the `report` parser
    (`run` does what its subverb, `args.report_verb`, says)."""
    report = sub.add_parser("report", help="write the 3H tables, figures and the config page")
    verbs = report.add_subparsers(
        dest="report_verb", required=True, metavar="{" + ",".join(_actions()) + "}"
    )

    def subverb(name: str, text: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=text, description=text)

    p = subverb("tables", "the 3H tables from a scores directory")
    _score_args(p, "tables directory: {static,continual,ablation,comparisons}.{md,csv,tex,html}")
    p = subverb("figures", "the 3H figures from a scores directory")
    _score_args(p, "figures directory: {tradeoff,seeds,density,pareto}.{png,pdf}")
    p = subverb("diagnostics", "draw diagnostics files of `mixmerge diagnose` as figures")
    p.add_argument(
        "json",
        nargs="+",
        metavar="JSON",
        help="diagnostics files, drawn as <out>/diagnostics_<stem>",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="figures directory")
    p = subverb("search", "draw the fronts of `mixmerge search run` (front.json files)")
    p.add_argument("fronts", nargs="+", metavar="JSON", help="front.json of each search space")
    p.add_argument("--out", required=True, metavar="PNG", help="the figure (a PDF beside it)")
    p = subverb("config-page", "the run's config (YAML) as an HTML page")
    p.add_argument("--config", required=True, metavar="YAML", help="the run's config file")
    p.add_argument(
        "--out", required=True, metavar="HTML", help="the HTML page for the Snakemake report"
    )
    return report


def _actions() -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
    """subverb -> what it does. Named in code, not stored on the parser, so that a static walk
    of the verb's imports (tests/test_envs.py) reaches every module a subverb imports."""
    return {
        "tables": _tables,
        "figures": _figures,
        "diagnostics": _diagnostics,
        "config-page": _config_page,
        "search": _search,
    }


def _search(args: argparse.Namespace) -> list[Path]:
    from mixmerge.report.search_figure import search_figure

    return search_figure(args.fronts, args.out)


def run(args: argparse.Namespace) -> list[Path]:
    """Run the subverb `args` was parsed for; log and return what it wrote."""
    paths = _actions()[args.report_verb](args)
    for path in paths:
        log.info("wrote %s", path)
    return paths

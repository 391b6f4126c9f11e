"""Arguments and actions of the `mixmerge report` and `mixmerge diagnose` verbs.

mixmerge/cli.py builds its parser from these, so the report stage owns its own options;
`python -m mixmerge.report {report,diagnose} ...` runs the same code without the main CLI.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("mixmerge")


def add_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", help="scores directory (<model id>/<benchmark>.json)")
    p.add_argument("--out", help="tables directory: {static,continual,ablation}.{md,csv,tex,html}")
    p.add_argument(
        "--selection",
        help="selection directory (dpo/<group>.json, mix/<strategy>.json); "
        "default <scores>/../selection when it exists",
    )
    p.add_argument("--figures", help="figures directory: {tradeoff,seeds,density,pareto}.{png,pdf}")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples of the items for the intervals and paired tests (config "
        "report.bootstrap)",
    )
    p.add_argument(
        "--alpha", type=float, default=0.05, help="significance level (config report.alpha)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (config seed)")
    p.add_argument(
        "--diagnostics",
        nargs="+",
        default=[],
        metavar="JSON",
        help="diagnostics files (from `mixmerge diagnose`) to plot as "
        "<figures>/diagnostics_<file stem>.{png,pdf}",
    )
    p.add_argument(
        "--config-page",
        nargs=2,
        metavar=("CONFIG", "OUT_HTML"),
        help="write the run's config (YAML) as an HTML page for the Snakemake report",
    )


def run_report(args: argparse.Namespace) -> list[Path]:
    from mixmerge.report.config_page import write_config_page
    from mixmerge.report.diagnostics_figure import write_diagnostics_figure
    from mixmerge.report.figures import write_figures
    from mixmerge.report.tables import write_tables

    if not (args.out or args.figures or args.config_page):
        raise ValueError("nothing to do: give --out (tables), --figures or --config-page")
    if (args.out or (args.figures and not args.diagnostics)) and not args.scores:
        raise ValueError("--scores is required for tables and score figures")
    if args.diagnostics and not args.figures:
        raise ValueError("--diagnostics needs --figures (where to draw them)")
    selection = Path(args.selection) if args.selection else None
    paths: list[Path] = []
    if args.config_page:
        paths.append(write_config_page(Path(args.config_page[0]), Path(args.config_page[1])))
    uncertainty = {"bootstrap": args.bootstrap, "alpha": args.alpha, "seed": args.seed}
    if args.out:
        paths += write_tables(Path(args.scores), Path(args.out), selection, **uncertainty)
    if args.figures and args.scores:
        paths += write_figures(Path(args.scores), Path(args.figures), selection, **uncertainty)
    for diag in args.diagnostics:
        paths += write_diagnostics_figure(Path(diag), Path(args.figures))
    for path in paths:
        log.info("wrote %s", path)
    return paths


def add_diagnose_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="merge recipe (MergeKit YAML with base_model and models)")
    p.add_argument("out", help="diagnostics JSON")
    p.add_argument("--device", default="cpu", help="torch device for the SVDs (e.g. cuda)")
    p.add_argument(
        "--no-interference",
        dest="interference",
        action="store_false",
        help="skip the TSVM interference (the per-task SVDs, the costly part)",
    )


def run_diagnose(args: argparse.Namespace) -> None:
    from mixmerge.merge.diagnostics import diagnose

    result = diagnose(args.recipe, args.out, device=args.device, interference=args.interference)
    overall = result["overall"]
    log.info(
        "%s: %d tensors, %d layers; sign conflict %s, sparsity %s, kurtosis %s",
        args.out,
        overall["n_tensors"],
        len(result["layers"]),
        _fmt(overall["sign_conflict"]),
        _fmt(overall["sparsity"]),
        _fmt(overall["kurtosis"]),
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mixmerge.report", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("report", help="write the 3H tables and figures")
    add_report_args(p)
    p.set_defaults(func=run_report)
    p = sub.add_parser("diagnose", help="per-layer task-vector diagnostics of a merge recipe")
    add_diagnose_args(p)
    p.set_defaults(func=run_diagnose)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"mixmerge {args.verb}: error: {err.args[0] if err.args else err!r}", file=sys.stderr)
        return 1
    return 0

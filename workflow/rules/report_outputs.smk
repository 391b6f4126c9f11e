# What the report stage writes: tables and figures, registered with report(...) for
# `snakemake --report`. Functions live here, not in report.smk (Snakemake's linter wants rule
# files free of function definitions); report.smk includes this file.
import os

import yaml

REPORT_TABLES = ["static", "continual", "ablation", "comparisons"]
TABLE_FORMATS = ["md", "csv", "tex", "html"]
REPORT_FIGURES = ["tradeoff", "seeds", "density", "pareto"]
# Diagnostics (SVDs of every task vector: about a TSVM merge's cost) for the merge settings the
# report asks for; default the static one.
DIAGNOSTIC_SETTINGS = [
    s
    for s in config.get("report", {}).get("settings", ["static"])
    if s in ("static", "continual") and s in config["merge"].get("settings", {"static": None})
    # diagnostics read task vectors, so they need a method with a base model (not `linear`)
    and any(m.get("merge_method") != "linear" for m in config["merge"].get("methods", {"": {}}).values())
]
TABLE_TITLES = {
    "static": "Static setting",
    "continual": "Continual setting",
    "ablation": "R-TSVM ablation",
    "comparisons": "Merge vs mix",
}


def report_outputs():
    """Every file of the report stage (for `rule all`)."""
    outputs = [f"{R}/tables/{t}.{ext}" for t in REPORT_TABLES for ext in TABLE_FORMATS]
    outputs.append(f"{R}/tables/intervals.csv")
    outputs += [f"{R}/figures/{f}.{ext}" for f in REPORT_FIGURES for ext in ("png", "pdf")]
    outputs += [
        f"{R}/figures/diagnostics_{s}.{ext}" for s in DIAGNOSTIC_SETTINGS for ext in ("png", "pdf")
    ]
    outputs.append(f"{R}/report/config.html")
    if (config.get("search") or {}).get("spaces"):  # the search's fronts (search.smk)
        outputs += [f"{R}/figures/search.{ext}" for ext in ("png", "pdf")]
    return outputs


def _table_outputs():
    # html: shown in the report; csv / tex: attached for download; md: not registered (same as html)
    outputs = {}
    for table in REPORT_TABLES:
        for ext in TABLE_FORMATS:
            path = f"{R}/tables/{table}.{ext}"
            if ext != "md":
                path = report(
                    path,
                    caption=f"../report/table_{table}.rst",
                    category="Tables",
                    subcategory=TABLE_TITLES[table],
                    labels={"table": TABLE_TITLES[table], "format": ext},
                )
            outputs[f"{table}_{ext}"] = path
    # every score file's bootstrap interval and standard error (sub-scores too)
    outputs["intervals"] = report(
        f"{R}/tables/intervals.csv",
        caption="../report/table_intervals.rst",
        category="Tables",
        subcategory="Intervals",
        labels={"table": "Intervals", "format": "csv"},
    )
    return outputs


def _figure_outputs():
    outputs = {}
    for figure in REPORT_FIGURES:
        outputs[figure] = report(
            f"{R}/figures/{figure}.png",
            caption=f"../report/figure_{figure}.rst",
            category="Figures",
            subcategory="3H results",
            labels={"figure": figure},
        )
        outputs[f"{figure}_pdf"] = f"{R}/figures/{figure}.pdf"
    return outputs

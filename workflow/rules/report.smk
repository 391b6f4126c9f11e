# Report stage: the paper's 3H tables and figures, the per-layer merge diagnostics, and the
# Snakemake HTML report. Every table and figure is registered with report(...) (captions in
# workflow/report/*.rst), so after a run `snakemake --report report.html` gives one
# self-contained page with the tables, figures, the config and the rule graph.
#
# Uses from common.smk: R, LOGS, CONFIG (the effective config file), all_score_files(),
# selection_files(), diagnostics_inputs(setting) (a dict with at least `recipe`: a recipe over
# base + the setting's models).
import yaml

REPORT_TABLES = ["static", "continual", "ablation"]
TABLE_FORMATS = ["md", "csv", "tex", "html"]
REPORT_FIGURES = ["tradeoff", "seeds", "density", "pareto"]
# Diagnostics (SVDs of every task vector: about a TSVM merge's cost) for the merge settings the
# report asks for; default the static one.
DIAGNOSTIC_SETTINGS = [
    s
    for s in config.get("report", {}).get("settings", ["static"])
    if s in ("static", "continual") and s in config["merge"].get("settings", {"static": None})
]
TABLE_TITLES = {
    "static": "Static setting",
    "continual": "Continual setting",
    "ablation": "R-TSVM ablation",
}


report: "../report/workflow.rst"


def report_outputs():
    """Every file of the report stage (for `rule all`)."""
    outputs = [f"{R}/tables/{t}.{ext}" for t in REPORT_TABLES for ext in TABLE_FORMATS]
    outputs += [f"{R}/figures/{f}.{ext}" for f in REPORT_FIGURES for ext in ("png", "pdf")]
    outputs += [
        f"{R}/figures/diagnostics_{s}.{ext}" for s in DIAGNOSTIC_SETTINGS for ext in ("png", "pdf")
    ]
    outputs.append(f"{R}/report/config.html")
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


rule report_tables:
    input:
        scores=lambda wc: all_score_files(),
        selection=lambda wc: selection_files(),
    output:
        **_table_outputs(),
    log:
        f"{LOGS}/report/tables.log",
    params:
        scores=f"{R}/scores",
        selection=f"{R}/selection",
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge report --scores {params.scores} --selection {params.selection} "
        "--out {R}/tables > {log} 2>&1"


rule report_figures:
    input:
        scores=lambda wc: all_score_files(),
        selection=lambda wc: selection_files(),
    output:
        **_figure_outputs(),
    log:
        f"{LOGS}/report/figures.log",
    params:
        scores=f"{R}/scores",
        selection=f"{R}/selection",
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge report --scores {params.scores} --selection {params.selection} "
        "--figures {R}/figures > {log} 2>&1"


rule report_diagnostics:
    input:
        unpack(lambda wc: diagnostics_inputs(wc.setting)),
    output:
        f"{R}/diagnostics/{{setting}}.json",
    log:
        f"{LOGS}/report/diagnostics_{{setting}}.log",
    params:
        device=config["merge"].get("device", "cpu"),
    wildcard_constraints:
        setting="static|continual",
    conda:
        "../../envs/merge.yaml"
    shell:
        "mixmerge diagnose {input.recipe} {output} --device {params.device} > {log} 2>&1"


rule report_diagnostics_figure:
    input:
        f"{R}/diagnostics/{{setting}}.json",
    output:
        png=report(
            f"{R}/figures/diagnostics_{{setting}}.png",
            caption="../report/figure_diagnostics.rst",
            category="Figures",
            subcategory="Merge diagnostics",
            labels={"figure": "diagnostics", "setting": "{setting}"},
        ),
        pdf=f"{R}/figures/diagnostics_{{setting}}.pdf",
    log:
        f"{LOGS}/report/diagnostics_{{setting}}.figure.log",
    wildcard_constraints:
        setting="static|continual",
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge report --diagnostics {input} --figures {R}/figures > {log} 2>&1"


# Snakemake's HTML reporter does not show the config itself: it goes in as a page of its own.
rule report_config:
    output:
        report(
            f"{R}/report/config.html",
            caption="../report/config.rst",
            category="Configuration",
            labels={"file": "effective config"},
        ),
    log:
        f"{LOGS}/report/config.log",
    params:
        config=CONFIG,
        text=yaml.safe_dump(dict(config), sort_keys=True),  # rerun when the config changes
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge report --config-page {params.config} {output} > {log} 2>&1"

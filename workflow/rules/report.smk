# Report stage: the paper's 3H tables and figures, the per-layer merge diagnostics (computed by
# the merge stage's diagnose verb, drawn from its JSON by the report), and the Snakemake HTML
# report. Every table and figure is registered with report(...) (captions in
# workflow/report/*.rst), so after a run `snakemake --report report.html` gives one
# self-contained page with the tables, figures, the config and the rule graph.
#
# Uses from common.smk: R, LOGS, CONFIG (the effective config file), all_score_files(),
# selection_files(), diagnostics_inputs(setting).


include: "report_outputs.smk"

report: "../report/workflow.rst"


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
        tables=lambda wc, output: os.path.dirname(output[0]),
        bootstrap=config.get("report", {}).get("bootstrap", 1000),
        alpha=config.get("report", {}).get("alpha", 0.05),
        seed=config.get("seed", 0),
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge report tables --scores {params.scores} --selection {params.selection} "
        "--bootstrap {params.bootstrap} --alpha {params.alpha} --seed {params.seed} "
        "--out {params.tables} > {log} 2>&1"


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
        figures=lambda wc, output: os.path.dirname(output[0]),
        bootstrap=config.get("report", {}).get("bootstrap", 1000),
        alpha=config.get("report", {}).get("alpha", 0.05),
        seed=config.get("seed", 0),
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge report figures --scores {params.scores} --selection {params.selection} "
        "--bootstrap {params.bootstrap} --alpha {params.alpha} --seed {params.seed} "
        "--out {params.figures} > {log} 2>&1"


rule report_diagnostics:
    input:
        unpack(lambda wc: diagnostics_inputs(wc.setting)),
    output:
        f"{R}/diagnostics/{{setting}}.json",
    log:
        f"{LOGS}/report/diagnostics_{{setting}}.log",
    params:
        pin=PIN_GPUS,
        device=config["merge"].get("device", "cpu"),
    wildcard_constraints:
        setting="static|continual",
    conda:
        "../../envs/merge.yaml"
    resources:
        gpu=1,
    shell:
        "{params.pin} {resources.gpu} mixmerge diagnose {input.recipe} {output} --device {params.device} > {log} 2>&1"


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
    params:
        figures=lambda wc, output: os.path.dirname(output.png),
    wildcard_constraints:
        setting="static|continual",
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge report diagnostics {input} --out {params.figures} > {log} 2>&1"


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
        "mixmerge report config-page --config {params.config} --out {output} > {log} 2>&1"

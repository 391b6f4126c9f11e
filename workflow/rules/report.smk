# Report stage: the paper's 3H tables from all score files.


rule report_tables:
    input:
        scores=all_score_files(),
        selections=selection_files(),
    output:
        md=f"{R}/tables/static.md",
        csv=f"{R}/tables/static.csv",
    log:
        f"{LOGS}/report/static.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge report --scores {R}/scores --out {R}/tables --setting static > {log} 2>&1"
